"""module_utils/pdf.py: verdicts before opening a file, summaries, limits."""
import os

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import pdf
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError

LIMITS = {'max_pages': 500, 'max_size_mb': 1, 'timeout': 5, 'memory_mb': 512}


@pytest.fixture(name='root')
def root_fixture(tmp_path):
    (tmp_path / 'copies' / 'source').mkdir(parents=True)
    return os.path.realpath(str(tmp_path))


def test_precheck_verdicts_without_opening(root):
    with open(os.path.join(root, 'empty.pdf'), 'wb'):
        pass
    with open(os.path.join(root, 'big.pdf'), 'wb') as out:
        out.write(b'0' * (1024 * 1024 + 1))
    os.mkdir(os.path.join(root, 'dir.pdf'))
    got = dict((p, pdf.precheck(root, p, LIMITS)[0]['verdict'])
               for p in ('empty.pdf', 'big.pdf', 'nope.pdf', 'dir.pdf', '../etc'))
    assert got == {'empty.pdf': 'empty', 'big.pdf': 'too_large', 'nope.pdf': 'missing', 'dir.pdf': 'missing',
                   '../etc': 'refused'}


def test_summarize_counts_every_verdict():
    summary = pdf.summarize([{'verdict': 'ok'}, {'verdict': 'ok'}, {'verdict': 'timeout'}])
    assert summary['ok'] == 2 and summary['timeout'] == 1 and set(summary) == set(pdf.VERDICTS)


def test_limits_are_validated():
    params = {'max_size_mb': 50, 'max_pages': 0, 'timeout': 30, 'parallel': 4, 'memory_limit_mb': 1024}
    with pytest.raises(KorrigoError):
        pdf.limits_from_params(params)


def test_a_file_a_long_lived_child_dies_on_is_checked_again_alone(tmp_path):
    """A batched child that dies (here: every 'serve' child crashes on its first job) does not decide the file's
    verdict: the file is opened again in a child of its own, which gives the verdict it gets alone."""
    import sys
    fitz = pytest.importorskip('fitz')
    good = tmp_path / 'good.pdf'
    doc = fitz.open()
    doc.new_page()
    doc.save(str(good))
    python = tmp_path / 'python'
    python.write_text('#!/bin/sh\ncase " $* " in *" serve "*) read line; echo "MuPDF error" >&2; exit 3;; esac\n'
                      'exec %s "$@"\n' % sys.executable)
    python.chmod(0o755)
    results = pdf.run_jobs([('check', str(good), None, None, 5)] * 2, LIMITS, parallel=1, python=str(python))
    assert [r['verdict'] for r in results] == ['ok', 'ok']
    assert all('_died' not in r for r in results)
