# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PDF verdicts and Korrigo's rasterization, each file in its own time- and memory-limited process.

A PDF can make MuPDF hang or eat all memory; so every file is opened in a child Python process with
``RLIMIT_AS`` (memory) and ``RLIMIT_CPU`` set, killed when it outlives its wall-clock limit. Several files
are checked side by side (threads waiting on child processes).

Verdicts: ``ok``, ``missing``, ``empty``, ``corrupted`` (does not open, opens only after MuPDF repaired it,
or has no page), ``encrypted`` (needs a password), ``too_large`` (over the size limit, or rendering a page needs
more memory than allowed), ``too_many_pages``, ``timeout`` (killed at the time limit), ``refused`` (resolves
outside the media root; never opened).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.media import OutsideMediaRoot, resolve

VERDICTS = ('ok', 'missing', 'empty', 'corrupted', 'encrypted', 'too_large', 'too_many_pages', 'timeout', 'refused')
BAD_VERDICTS = tuple(v for v in VERDICTS if v != 'ok')
ZOOM = 2.0  # Korrigo's PDFProcessor: Matrix(2.0, 2.0)

# Runs in the child, which limits itself first (no preexec_fn: the parent has threads).
# argv: mode (check|image|rasterize|serve), pdf path, max pages, memory MB, CPU seconds[, output dir, copy id].
# In ``serve`` mode the child answers one job per line of stdin (JSON [mode, path, output dir, copy id, CPU seconds])
# with one JSON line each, its CPU limit set again before each job; the parent enforces each job's wall-clock limit.
CHILD = r'''
import json, os, resource, sys
mode, path, max_pages, memory_mb, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if memory_mb > 0:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))
if cpu > 0 and mode != 'serve':
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
class Done(BaseException):
    pass
def out(**kw):
    raise Done(kw)
def emit(result):
    sys.stdout.write(json.dumps(result) + '\n'); sys.stdout.flush()
try:
    try:
        import pymupdf as fitz
    except ImportError:
        import fitz
except ImportError as err:
    emit(dict(verdict='error', detail='PyMuPDF is not installed for %s: %s' % (sys.executable, err)))
    sys.exit(0)
try:
    fitz.TOOLS.mupdf_display_errors(False)
except Exception:
    pass
def memory(err):
    text = ('%s %s' % (type(err).__name__, err)).lower()
    return (isinstance(err, MemoryError) or 'malloc' in text or 'out of memory' in text or 'cannot allocate' in text
            or 'overly large' in text or 'errorlimit' in text)
def job(mode, path, out_dir=None, copy_id=None):
    fitz.TOOLS.reset_mupdf_warnings()
    try:
        doc = fitz.open(path)
    except Exception as err:
        if memory(err):
            out(verdict='too_large', detail='opening needs more memory than allowed: %s' % err)
        out(verdict='corrupted', detail='%s: %s' % (type(err).__name__, err))
    if mode == 'image':
        # What Korrigo's PDFFlattener does with a page image: open it, read its first frame, convert it to PDF.
        if doc.is_pdf:
            out(verdict='corrupted', detail='a PDF, not a page image', pages=None)
        try:
            if doc.page_count < 1:
                out(verdict='corrupted', detail='the image has no frame', pages=0)
            rect = doc[0].rect
            if rect.width <= 0 or rect.height <= 0:
                out(verdict='corrupted', detail='the image has no size', pages=1)
            doc.convert_to_pdf()
        except Exception as err:
            if memory(err):
                out(verdict='too_large', detail='converting needs more memory than allowed: %s' % err, pages=1)
            out(verdict='corrupted', detail='%s: %s' % (type(err).__name__, err), pages=1)
        out(verdict='ok', detail='', pages=1)
    if doc.needs_pass:
        out(verdict='encrypted', detail='the PDF needs a password', pages=None)
    repaired = bool(getattr(doc, 'is_repaired', False) or getattr(doc, 'isRepaired', False))
    warnings = fitz.TOOLS.mupdf_warnings()
    if repaired or 'repair' in warnings.lower():
        out(verdict='corrupted', detail='MuPDF had to repair it: %s' % ' | '.join(warnings.splitlines()[:3]))
    pages = doc.page_count
    if pages == 0:
        out(verdict='corrupted', detail='the PDF has no page', pages=0)
    if pages > max_pages:
        out(verdict='too_many_pages', detail='%d pages, more than %d' % (pages, max_pages), pages=pages)
    matrix = fitz.Matrix(%(zoom)s, %(zoom)s)
    try:
        if mode == 'check':
            doc[0].get_pixmap(matrix=matrix)
            out(verdict='ok', detail='', pages=pages)
        if mode == 'rasterize' and sys.argv[1] == 'serve':
            if not os.path.isdir(out_dir):
                out(verdict='corrupted', detail='the output directory %s is gone' % out_dir, pages=pages)
        else:
            os.makedirs(out_dir, exist_ok=True)
        images = []
        for k in range(pages):
            name = 'p%%03d.png' %% k
            doc[k].get_pixmap(matrix=matrix).save(os.path.join(out_dir, name))
            images.append('copies/pages/%%s/%%s' %% (copy_id, name))
        out(verdict='ok', detail='', pages=pages, pages_images=images)
    except Exception as err:
        if memory(err):
            out(verdict='too_large', detail='rendering needs more memory than allowed: %s' % err, pages=pages)
        out(verdict='corrupted', detail='rendering failed: %s: %s' % (type(err).__name__, err), pages=pages)
def run(mode, path, out_dir=None, copy_id=None):
    try:
        job(mode, path, out_dir, copy_id)
    except Done as done:
        return done.args[0]
    except MemoryError as err:
        return dict(verdict='too_large', detail='ran out of memory: %s' % err)
    return dict(verdict='corrupted', detail='no verdict')
if mode != 'serve':
    emit(run(mode, path, *sys.argv[6:8]))
    sys.exit(0)
for line in sys.stdin:
    job_mode, job_path, job_dir, job_copy, job_cpu = json.loads(line)
    if job_cpu > 0:
        used = resource.getrusage(resource.RUSAGE_SELF)
        resource.setrlimit(resource.RLIMIT_CPU, (int(used.ru_utime + used.ru_stime) + 1 + job_cpu,
                                                 resource.getrlimit(resource.RLIMIT_CPU)[1]))
    emit(run(job_mode, job_path, job_dir, job_copy))
'''.replace('%(zoom)s', repr(ZOOM)).replace('%%', '%')


def pdf_limits_argument_spec():
    """Options of the per-file check (the korrigo.ops.korrigo.pdf_limits fragment)."""
    return dict(
        max_size_mb=dict(type='int', default=50),
        max_pages=dict(type='int', default=500),
        timeout=dict(type='int', default=30),
        memory_limit_mb=dict(type='int', default=1024),
        parallel=dict(type='int', default=4),
    )


def limits_from_params(params):
    for name in ('max_size_mb', 'max_pages', 'timeout', 'parallel'):
        if params[name] < 1:
            raise KorrigoError("%s must be at least 1 (got %d)" % (name, params[name]))
    if params['memory_limit_mb'] < 0:
        raise KorrigoError("memory_limit_mb must not be negative (0: no limit)")
    return {'max_size_mb': params['max_size_mb'], 'max_pages': params['max_pages'], 'timeout': params['timeout'],
            'memory_mb': params['memory_limit_mb']}


def run_child(mode, real_path, limits, out_dir=None, copy_id=None, python=None):
    """One child process; its JSON verdict, or timeout when killed by the wall-clock or CPU limit."""
    timeout = limits['timeout']
    argv = [python or sys.executable, '-c', CHILD, mode, real_path, str(limits['max_pages']),
            str(int(limits.get('memory_mb') or 0)), str(int(timeout) + 1)]
    if mode == 'rasterize':
        argv += [out_dir, copy_id]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.communicate()
        return {'verdict': 'timeout', 'detail': 'killed after %ss (time limit)' % timeout}
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return {'verdict': 'timeout', 'detail': 'killed by the CPU time limit (%ss)' % timeout}
    try:
        result = json.loads(stdout.decode('utf-8', 'replace'))
    except ValueError:
        err = stderr.decode('utf-8', 'replace').strip().splitlines()
        if proc.returncode and any('memory' in line.lower() for line in err):
            return {'verdict': 'too_large', 'detail': 'ran out of memory (limit %s MB)' % limits.get('memory_mb')}
        return {'verdict': 'corrupted', 'detail': 'MuPDF crashed (exit %s): %s' % (proc.returncode, ' '.join(err[-2:]))}
    if result.get('verdict') == 'error':
        raise KorrigoError(result['detail'])
    return result


def precheck(root, path, limits):
    """Verdicts decided without opening the file: refused, missing, empty, too_large. None when it must be opened."""
    entry = {'path': path, 'realpath': None, 'size': None, 'pages': None}
    try:
        rel, real = resolve(root, path)
    except OutsideMediaRoot as err:
        return dict(entry, verdict='refused', detail=str(err)), None
    entry.update(path=rel, realpath=real)
    if not os.path.isfile(real):
        return dict(entry, verdict='missing', detail='no such file' if not os.path.exists(real) else 'not a file'), None
    size = os.path.getsize(real)
    entry['size'] = size
    if size == 0:
        return dict(entry, verdict='empty', detail='0 bytes'), None
    if size > limits['max_size_mb'] * 1024 * 1024:
        return dict(entry, verdict='too_large', detail='%d bytes, more than %d MB' % (size, limits['max_size_mb'])), None
    return None, entry


FILE_KINDS = ('pdf', 'image')


def check_one(root, path, limits, python=None, kind='pdf'):
    """The verdict of one file under ``root``: a PDF (opens, not encrypted, pages within limits, first page
    renders) or, with ``kind='image'``, a page image (opens as an image and converts to a PDF page, as
    Korrigo's PDFFlattener does with the booklets' pages_images)."""
    if kind not in FILE_KINDS:
        raise KorrigoError("kind must be one of %s (got %r)" % (', '.join(FILE_KINDS), kind))
    decided, entry = precheck(root, path, limits)
    if decided is not None:
        return decided
    result = run_child('check' if kind == 'pdf' else 'image', entry['realpath'], limits, python=python)
    entry.update(verdict=result['verdict'], detail=result.get('detail', ''), pages=result.get('pages'))
    return entry


def check_files(root, paths, limits, parallel=4, python=None, kind='pdf', batched=False):
    """Verdicts of ``paths`` (relative to ``root`` or absolute), in input order, ``parallel`` at a time.

    ``batched``: ``parallel`` long-lived children each take one file after the other (run_jobs), instead of one
    child per file - the same verdicts and limits per file, without a process start per file (thousands of page
    images)."""
    if not paths:
        return []
    if kind not in FILE_KINDS:
        raise KorrigoError("kind must be one of %s (got %r)" % (', '.join(FILE_KINDS), kind))
    if not batched:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(paths)))) as pool:
            return list(pool.map(lambda p: check_one(root, p, limits, python, kind), paths))
    entries = [precheck(root, path, limits) for path in paths]
    opened = [entry for decided, entry in entries if decided is None]
    results = run_jobs([('check' if kind == 'pdf' else 'image', entry['realpath'], None, None, limits['timeout'])
                        for entry in opened], limits, parallel, python)
    verdicts = dict((id(entry), result) for entry, result in zip(opened, results))
    out = []
    for decided, entry in entries:
        if decided is not None:
            out.append(decided)
            continue
        result = verdicts[id(entry)]
        out.append(dict(entry, verdict=result['verdict'], detail=result.get('detail', ''), pages=result.get('pages')))
    return out


def rasterize(real_path, out_dir, copy_id, limits, python=None):
    """Korrigo's rasterization (every page at Matrix(2, 2), pNNN.png) into ``out_dir``, in a limited child."""
    return run_child('rasterize', real_path, limits, out_dir=out_dir, copy_id=copy_id, python=python)


def rasterize_many(jobs, limits, parallel=4, python=None):
    """Korrigo's rasterization of several PDFs side by side: ``jobs`` are (real path, output dir, copy id); the
    results in order, each as rasterize's (every PDF under ``limits``, ``timeout`` per PDF)."""
    return run_jobs([('rasterize', real, out_dir, copy_id, limits['timeout']) for real, out_dir, copy_id in jobs],
                    limits, parallel, python)


# A long-lived child answers at most this many jobs, then a fresh one takes over (memory fragmentation).
JOBS_PER_CHILD = 200


class _Server(object):
    """One ``serve`` child: a job at a time, each with its own wall-clock limit (the child is killed past it)."""

    def __init__(self, limits, python=None):
        self.limits = limits
        self.stderr = tempfile.TemporaryFile()
        argv = [python or sys.executable, '-c', CHILD, 'serve', '-', str(limits['max_pages']),
                str(int(limits.get('memory_mb') or 0)), '0']
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     start_new_session=True, close_fds=True)
        self.buffer = b''
        self.jobs = 0
        self.alive = True

    def ask(self, job):
        mode, real, out_dir, copy_id, timeout = job
        self.jobs += 1
        line = json.dumps([mode, real, out_dir, copy_id, int(timeout) + 1]).encode('utf-8') + b'\n'
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self.died()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b'\n' not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close(kill=True)
                return {'verdict': 'timeout', 'detail': 'killed after %ss (time limit)' % timeout}
            ready, _w, _x = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return self.died()
            self.buffer += chunk
        answer, self.buffer = self.buffer.split(b'\n', 1)
        result = json.loads(answer.decode('utf-8', 'replace'))
        if result.get('verdict') == 'error':
            self.close(kill=True)
            raise KorrigoError(result['detail'])
        return result

    def died(self):
        """The verdict of the job the child died on (CPU limit, memory, MuPDF crash), marked ``_died``: the files
        before it may have left the long-lived child short of memory, so run_jobs asks a fresh child again."""
        self.alive = False
        code = self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode('utf-8', 'replace').strip().splitlines()
        self.close()
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return {'verdict': 'timeout', 'detail': 'killed by the CPU time limit', '_died': True}
        if any('memory' in line.lower() for line in err[-5:]):
            return {'verdict': 'too_large', 'detail': 'ran out of memory (limit %s MB)' % self.limits.get('memory_mb'),
                    '_died': True}
        return {'verdict': 'corrupted', 'detail': 'MuPDF crashed (exit %s): %s' % (code, ' '.join(err[-2:])),
                '_died': True}

    def close(self, kill=False):
        self.alive = False
        if self.proc.poll() is None:
            if not kill:
                try:
                    self.proc.stdin.close()
                    self.proc.wait(timeout=5)
                except (OSError, subprocess.TimeoutExpired):
                    kill = True
            if kill or self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


def run_jobs(jobs, limits, parallel=4, python=None):
    """Results of ``jobs`` ((mode, real path, output dir, copy id, timeout) each), in order, on ``parallel``
    long-lived children (one per thread); a child killed at a job's limit or dead on it is replaced, and a job a
    child died on is tried once more in a child of its own (the verdict a file gets alone: the same as one child
    per file)."""
    if not jobs:
        return []
    results = [None] * len(jobs)
    pending = iter(enumerate(jobs))
    lock = threading.Lock()

    def worker():
        server = None
        try:
            while True:
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                index, job = item
                if server is not None and (not server.alive or server.jobs >= JOBS_PER_CHILD):
                    server.close()
                    server = None
                if server is None:
                    server = _Server(limits, python)
                result = server.ask(job)
                if result.pop('_died', False):
                    mode, real, out_dir, copy_id, _timeout = job
                    result = run_child(mode, real, limits, out_dir=out_dir, copy_id=copy_id, python=python)
                results[index] = result
        finally:
            if server is not None:
                server.close()

    count = max(1, min(parallel, len(jobs)))
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(worker) for _slot in range(count)]
        for future in futures:
            future.result()
    return results


def summarize(results):
    summary = dict((verdict, 0) for verdict in VERDICTS)
    for item in results:
        summary[item['verdict']] = summary.get(item['verdict'], 0) + 1
    return summary
