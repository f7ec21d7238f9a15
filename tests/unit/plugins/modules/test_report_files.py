"""report_files: plain names only, atomic writes, check mode writes nothing, a second run changes nothing."""
import os
import stat

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.report_files import planned_files, write_reports


class FakeModule(object):
    def __init__(self, path, files, check_mode=False, diff=False):
        self.params = dict(path=str(path), files=files, mode='0640', directory_mode='0750')
        self.check_mode = check_mode
        self._diff = diff

    def atomic_move(self, src, dest):
        os.rename(src, dest)

    def set_mode_if_different(self, path, mode, changed):
        os.chmod(path, int(mode, 8))
        return changed


FILES = [dict(name='triage-a-latest.json', content='{"a": 1}\n', also_as=[]),
         dict(name='triage-a-latest.md', content='# a\n', also_as=[])]


@pytest.mark.parametrize('name', ['../escape.json', 'sub/dir.md', '/etc/passwd', '..', '.hidden', ''])
def test_names_outside_the_directory_are_refused(name):
    with pytest.raises(KorrigoError):
        planned_files([dict(name=name, content='x')])


def test_repeated_names_are_refused():
    with pytest.raises(KorrigoError, match='repeat'):
        planned_files([dict(name='a.md', content='x'), dict(name='a.md', content='y')])


def test_check_mode_writes_nothing_but_says_what_would_be_written(tmp_path):
    target = tmp_path / 'reports'
    result = write_reports(FakeModule(target, FILES, check_mode=True, diff=True))
    assert result['changed'] and len(result['written']) == 2 and not target.exists()
    assert result['diff']['before'] == {'triage-a-latest.json': 'absent', 'triage-a-latest.md': 'absent'}


def test_writes_every_file_then_a_second_run_changes_nothing(tmp_path):
    target = tmp_path / 'reports'
    first = write_reports(FakeModule(target, FILES))
    assert first['changed'] and (target / 'triage-a-latest.md').read_text() == '# a\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    assert stat.S_IMODE((target / 'triage-a-latest.json').stat().st_mode) == 0o640
    assert sorted(os.listdir(str(target))) == ['triage-a-latest.json', 'triage-a-latest.md']  # no temporary left
    second = write_reports(FakeModule(target, FILES))
    assert not second['changed'] and second['written'] == [] and len(second['unchanged']) == 2
    changed = write_reports(FakeModule(target, [dict(name='triage-a-latest.md', content='# b\n')], diff=True))
    assert changed['written'] == [str(target / 'triage-a-latest.md')]
    assert changed['diff']['before']['triage-a-latest.md']['size'] == 4


def test_a_file_where_the_directory_should_be_is_refused(tmp_path):
    (tmp_path / 'reports').write_text('not a directory')
    with pytest.raises(KorrigoError, match='not a directory'):
        write_reports(FakeModule(tmp_path / 'reports', FILES))


def test_also_as_writes_the_same_content_under_more_names(tmp_path):
    files = [dict(name='triage-a-20261202T010203Z.json', content='{}\n', also_as=['triage-a-latest.json']),
             dict(name='triage-a.md', content='# a\n', also_as=[])]
    result = write_reports(FakeModule(tmp_path, files))
    assert len(result['written']) == 3
    assert (tmp_path / 'triage-a-latest.json').read_text() == (tmp_path / 'triage-a-20261202T010203Z.json').read_text()
    with pytest.raises(KorrigoError, match='not a plain file name'):
        planned_files([dict(name='a.json', content='x', also_as=['../b.json'])])
