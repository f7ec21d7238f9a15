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
