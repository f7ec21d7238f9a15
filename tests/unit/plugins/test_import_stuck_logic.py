"""Pure logic of the import-stuck modules: media containment, pre-open verdicts, worker action decisions."""
import os

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import media, pdf
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.modules import celery_health, copy_import

LIMITS = {'max_pages': 500, 'max_size_mb': 1, 'timeout': 5, 'memory_mb': 512}


@pytest.fixture(name='root')
def root_fixture(tmp_path):
    (tmp_path / 'copies' / 'source').mkdir(parents=True)
    return os.path.realpath(str(tmp_path))


@pytest.mark.parametrize('path', ['../x.pdf', 'copies/../../x.pdf', '/etc/passwd', '', 'a\x00b'])
def test_resolve_refuses_paths_outside_the_media_root(root, path):
    with pytest.raises(media.OutsideMediaRoot):
        media.resolve(root, path)


def test_resolve_follows_symlinks(root):
    os.symlink('/etc', os.path.join(root, 'copies', 'source', 'escape'))
    with pytest.raises(media.OutsideMediaRoot):
        media.resolve(root, 'copies/source/escape/passwd')
    assert media.resolve(root, os.path.join(root, 'copies', 'a.pdf')) == ('copies/a.pdf', os.path.join(root, 'copies', 'a.pdf'))


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


@pytest.mark.parametrize('state,policy,healthy,running,action', [
    (None, 'if_unhealthy', False, False, 'none'),
    ('started', 'if_unhealthy', False, False, 'started'),
    ('started', 'if_unhealthy', False, True, 'none'),
    ('started', 'always', True, True, 'none'),
    ('restarted', 'if_unhealthy', True, True, 'none'),
    ('restarted', 'if_unhealthy', False, True, 'restarted'),
    ('restarted', 'if_unhealthy', False, False, 'restarted'),
    ('restarted', 'always', True, True, 'restarted'),
])
def test_worker_action(state, policy, healthy, running, action):
    assert celery_health.decide(state, policy, healthy, running) == action


def test_copy_import_refuses_an_empty_selector_and_bad_ids():
    base = {'stuck': False, 'copy_ids': [], 'max_changes': 10, 'stuck_after_minutes': 5, 'rasterize_timeout': 60}
    with pytest.raises(KorrigoError, match='empty selector'):
        copy_import.validate(base)
    with pytest.raises(KorrigoError, match='malformed'):
        copy_import.validate(dict(base, copy_ids=['x']))
    assert copy_import.validate(dict(base, stuck=True)) == []


def test_page_paths_are_korrigos():
    assert copy_import.page_paths('abc', 2) == ['copies/pages/abc/p000.png', 'copies/pages/abc/p001.png']
