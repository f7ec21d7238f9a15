import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.report import describe_action, report_text


def test_report_has_every_section_even_when_empty():
    lines = report_text({'scenario': 'lock_conflicts', 'title': 'Locks', 'status': 'healthy',
                         'found': ['0 locks'], 'done': [], 'needs_human': []})
    assert lines[0] == 'lock_conflicts: Locks'
    assert 'Found (1):' in lines and '  - 0 locks' in lines
    assert 'Done (0):' in lines and 'Needs a human (0):' in lines


def test_check_mode_is_said_in_the_title():
    assert 'CHECK MODE' in report_text({'scenario': 's', 'check_mode': True})[0]


def test_report_without_scenario_is_refused():
    with pytest.raises(AnsibleFilterError):
        report_text({'found': []})


def test_describe_action():
    text = describe_action({'kind': 'release_lock', 'anonymous_id': 'IMPORT-1', 'owner': 'prof.martin',
                            'before': {'status': 'LOCKED'}, 'after': {'status': 'READY'}})
    assert text == 'release_lock IMPORT-1 (lock of prof.martin): LOCKED -> READY'


def test_describe_session_and_note_actions():
    assert describe_action({'kind': 'terminate_session', 'pid': 42, 'usename': 'app', 'application_name': 'gunicorn',
                            'reason': 'idle_in_transaction', 'before': {'state': 'idle in transaction'},
                            'after': {'state': 'terminated'}}) == \
        'terminate_session pid 42 (app, gunicorn, idle_in_transaction)'
    assert describe_action({'kind': 'note_gap', 'anonymous_id': 'IMPORT-1', 'gap': 'missing_import',
                            'before': {'status': 'READY'}, 'after': {'status': 'READY'}}) == \
        'note_gap IMPORT-1 (missing_import)'
