"""Scenarios 1 and 2 on disk: pdf_check on N files (PDFs and page images of mixed sizes) with 1 and 2 workers
against a bare PyMuPDF loop, and copy_import's rasterization of M PDFs against a bare PyMuPDF render loop.

Usage: python benchmarks/bench_pdf.py [--files 1000] [--rasterize 200] [--repeat 3]

Files are written under a media root of their own (/tmp/korrigo-bench-pdf): 60 % PDFs of 1 to 12 A4 pages with
text (a scanned copy's shape, 1-500 kB), 40 % PNG page images (A4 at 100-200 dpi). Floors, in the same run:

- ``bare_open_count``: fitz.open + page_count (+ the first frame of an image) per file, in a pool of 1 or 2
  processes started once: what the issue calls the bare loop;
- ``bare_same_work``: the same plus what pdf_check's child really does per file (render the first page at Korrigo's
  Matrix(2, 2), convert an image to PDF), so the gap between the two floors is the check's own work;
- ``pdf_check``: the module process, ``parallel`` 1 and 2, kind pdf on the PDFs then kind image on the images;
- rasterize: module_utils.pdf.rasterize_many with one worker (copy_import's path: a long-lived limited child,
  every page at Matrix(2, 2) to pNNN.png) against the same render loop in-process.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

try:
    import pymupdf as fitz
except ImportError:  # PyMuPDF < 1.24
    import fitz

MEDIA = '/tmp/korrigo-bench-pdf'


def make_files(n):
    """(pdf paths, image paths) relative to MEDIA, deterministic sizes."""
    pdfs, images = [], []
    os.makedirs(os.path.join(MEDIA, 'copies', 'source'), exist_ok=True)
    os.makedirs(os.path.join(MEDIA, 'copies', 'pages'), exist_ok=True)
    n_pdf = int(n * 0.6)
    for i in range(n_pdf):
        rel = 'copies/source/copy_%04d.pdf' % i
        path = os.path.join(MEDIA, rel)
        if not os.path.exists(path):
            doc = fitz.open()
            for k in range(1 + i % 12):
                page = doc.new_page(width=595, height=842)
                for line in range(10 + (i * 7 + k) % 40):
                    page.insert_text(fitz.Point(50, 60 + line * 18), 'Copie %d page %d ligne %d: reponse' % (i, k, line),
                                     fontsize=11)
                if i % 5 == 0:
                    page.draw_rect(fitz.Rect(50, 600, 545, 800), color=(0, 0, 0), fill=(0.9, 0.9, 0.9))
            doc.save(path)
            doc.close()
        pdfs.append(rel)
    for i in range(n - n_pdf):
        rel = 'copies/pages/page_%04d.png' % i
        path = os.path.join(MEDIA, rel)
        if not os.path.exists(path):
            zoom = (100 + (i % 3) * 50) / 72.0
            doc = fitz.open()
            page = doc.new_page(width=595, height=842)
            page.insert_text(fitz.Point(50, 80), 'Page image %d' % i, fontsize=14)
            page.get_pixmap(matrix=fitz.Matrix(zoom, zoom)).save(path)
            doc.close()
        images.append(rel)
    return pdfs, images


def _open_count(path):
    doc = fitz.open(path)
    n = doc.page_count
    if not doc.is_pdf:
        doc[0].rect  # noqa: B018 the first frame
    doc.close()
    return n


def _same_work(path):
    doc = fitz.open(path)
    n = doc.page_count
    if doc.is_pdf:
        doc[0].get_pixmap(matrix=fitz.Matrix(2, 2))
    else:
        doc.convert_to_pdf()
    doc.close()
    return n


def bare(fn, paths, workers):
    full = [os.path.join(MEDIA, p) for p in paths]
    started = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        pool.map(fn, full, chunksize=8)
    return time.perf_counter() - started


def pdf_check(pdfs, images, workers):
    total = 0.0
    for kind, paths in (('pdf', pdfs), ('image', images)):
        args = {'media_root': MEDIA, 'paths': paths, 'kind': kind, 'parallel': workers}
        seconds, result = common.run_module('pdf_check', args, None)
        if result['summary'].get('ok') != len(paths):
            raise SystemExit('pdf_check: not every file ok: %s' % result['summary'])
        total += seconds
    return total


def rasterize_collection(pdfs, parallel=1):
    """copy_import's path: module_utils.pdf.rasterize_many (long-lived limited children, ``parallel`` of them)."""
    from ansible_collections.korrigo.ops.plugins.module_utils.pdf import rasterize_many
    limits = {'max_size_mb': 50, 'max_pages': 500, 'timeout': 120, 'memory_mb': 1024, 'memory_limit_mb': 1024}
    out = tempfile.mkdtemp(prefix='korrigo-bench-raster-')
    jobs = []
    for i, rel in enumerate(pdfs):
        os.makedirs(os.path.join(out, str(i)))
        jobs.append((os.path.join(MEDIA, rel), os.path.join(out, str(i)), 'copy%d' % i))
    started = time.perf_counter()
    for result in rasterize_many(jobs, limits, parallel):
        if result.get('verdict') != 'ok':
            raise SystemExit('rasterize: %s' % result)
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def rasterize_bare(pdfs):
    out = tempfile.mkdtemp(prefix='korrigo-bench-raster-')
    started = time.perf_counter()
    for i, rel in enumerate(pdfs):
        target = os.path.join(out, str(i))
        os.makedirs(target)
        doc = fitz.open(os.path.join(MEDIA, rel))
        for k in range(doc.page_count):
            doc[k].get_pixmap(matrix=fitz.Matrix(2, 2)).save(os.path.join(target, 'p%03d.png' % k))
        doc.close()
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=1000)
    parser.add_argument('--rasterize', type=int, default=200)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--keep', action='store_true')
    parser.add_argument('--rasterize-only', action='store_true')
    opts = parser.parse_args(argv)
    pdfs, images = make_files(opts.files)
    everything = pdfs + images
    result = {'scenario': 'pdf', 'n': {'files': len(everything), 'pdfs': len(pdfs), 'images': len(images),
                                       'pdf_pages': sum(1 + i % 12 for i in range(len(pdfs))),
                                       'rasterize_pdfs': min(opts.rasterize, len(pdfs))},
              'load_before': common.load_average(), 'runs': {}}
    for workers in (() if opts.rasterize_only else (1, 2)):
        for name, fn in (('bare_open_count', lambda w=workers: bare(_open_count, everything, w)),
                         ('bare_same_work', lambda w=workers: bare(_same_work, everything, w)),
                         ('pdf_check', lambda w=workers: pdf_check(pdfs, images, w))):
            key = '%s_%dw' % (name, workers)
            result['runs'][key] = common.stats(common.repeat(fn, opts.repeat))
            print('  %-24s median %.2f s' % (key, result['runs'][key]['median']), file=sys.stderr)
    sample = pdfs[:opts.rasterize]
    for name, fn in (('rasterize_bare', lambda: rasterize_bare(sample)),
                     ('rasterize_collection', lambda: rasterize_collection(sample))):
        result['runs'][name] = common.stats(common.repeat(fn, opts.repeat))
        print('  %-24s median %.2f s' % (name, result['runs'][name]['median']), file=sys.stderr)
    result['load_after'] = common.load_average()
    if not opts.keep:
        shutil.rmtree(MEDIA, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
