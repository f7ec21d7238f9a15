"""side_effects.SideEffects with a fake Remediation: max_changes before any action, check mode, partial failures."""
import json

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.errors import ConcurrentRun, KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.side_effects import SideEffects


class FakeRemediation(object):
    """Records what the guard asks of its transaction instead of talking to PostgreSQL."""
    instances = []

    def __init__(self, params, name, check_mode, application_name=None, need_actor=True, tables=()):
        self.params, self.name, self.check_mode = params, name, check_mode
        self.conn = None
        self.actor_id = 7
        self.rules = None
        self.statements = []
        self.closed = None
        self.locked = params.get('_locked', True)
        FakeRemediation.instances.append(self)

    def __enter__(self):
        if not self.locked:
            raise ConcurrentRun('another run of %s holds its advisory lock' % self.name)
        self.conn = object()
        return self

    def _close(self, commit):
        self.closed = 'commit' if commit else 'rollback'
        self.conn = None

    def trail_params(self, **extra):
        return dict({'actor_id': self.actor_id, 'audit_ip': '127.0.0.1', 'user_agent': 'ua'}, **extra)

    def fetchall(self, statement, params):
        self.statements.append((statement, params))
        return [{'id': i + 1} for i in range(len(json.loads(params['rows'])))]


def guard(check_mode=False, **params):
    FakeRemediation.instances = []
    return SideEffects(dict(dict(max_changes=10, remediation_user='korrigo-ops'), **params), 'media_storage',
                       check_mode, remediation_class=FakeRemediation)


def rows_written(rem):
    assert len(rem.statements) == 1
    return json.loads(rem.statements[0][1]['rows'])


def test_each_action_performed_is_one_audit_row_committed_after():
    done = []
    with guard() as g:
        g.plan(3)
        g.perform('media_storage.remove', 'TempUpload', 'temp_uploads/a.pdf', lambda: done.append('a') or {'x': 1},
                  before={'path': 'temp_uploads/a.pdf'})
        assert g.perform('korrigo_ops.media_storage.remove', 'TempUpload', 'b', lambda: None) is None  # gone
        g.perform('korrigo_ops.media_storage.remove', 'TempUpload', 'c', lambda: True)
        assert FakeRemediation.instances[0].statements == []  # nothing written before the actions are done
    rem = FakeRemediation.instances[0]
    rows = rows_written(rem)
    assert rem.closed == 'commit' and done == ['a'] and g.result() == {
        'audit_rows': 2, 'audit_actions': ['korrigo_ops.media_storage.remove']}
    assert [r['resource_id'] for r in rows] == ['temp_uploads/a.pdf', 'c']
    meta = rows[0]['metadata']
    assert meta['remediation'] == 'media_storage' and meta['actor'] == 'korrigo-ops' and 'os_user' in meta['run_by']
    assert meta['before'] == {'path': 'temp_uploads/a.pdf'} and meta['after'] == {'x': 1}


def test_max_changes_refuses_before_any_action():
    with pytest.raises(KorrigoError, match='max_changes=2'):
        with guard(max_changes=2) as g:
            g.plan(3)
            raise AssertionError('not reached')
    assert FakeRemediation.instances[0].closed == 'rollback'


@pytest.mark.parametrize('bad', [0, -1, None])
def test_max_changes_must_be_positive(bad):
    with pytest.raises(KorrigoError, match='max_changes must be a positive number'):
        with guard(max_changes=bad):
            pass
    assert FakeRemediation.instances[0].conn is None  # never connected


def test_check_mode_performs_nothing_and_writes_nothing():
    with guard(check_mode=True) as g:
        g.plan(2)
        g.perform('korrigo_ops.celery_task.queue', 'Copy', 'x', lambda: pytest.fail('acted in check mode'))
        g.perform('korrigo_ops.celery_task.queue', 'Copy', 'y', None)
    rem = FakeRemediation.instances[0]
    assert rem.closed == 'rollback' and rem.statements == []
    assert g.result() == {'audit_rows': 0, 'audit_actions': ['korrigo_ops.celery_task.queue']}


def test_a_failing_action_records_those_done_then_fails():
    def boom():
        raise OSError('disk on fire')
    with pytest.raises(KorrigoError) as err:
        with guard() as g:
            g.plan(3)
            g.perform('korrigo_ops.media_storage.remove', 'TempUpload', 'a', lambda: True)
            g.perform('korrigo_ops.media_storage.remove', 'TempUpload', 'b', boom)
            g.perform('korrigo_ops.media_storage.remove', 'TempUpload', 'c', lambda: pytest.fail('went on'))
    rem = FakeRemediation.instances[0]
    assert 'failed after 1 of 3 planned action(s): disk on fire' in err.value.msg
    assert 'performed and recorded: remove a' in err.value.msg
    assert err.value.details['performed'] == [{'action': 'korrigo_ops.media_storage.remove',
                                               'resource_type': 'TempUpload', 'resource_id': 'a'}]
    assert rem.closed == 'commit' and [r['resource_id'] for r in rows_written(rem)] == ['a']


def test_a_failure_with_nothing_done_rolls_back():
    with pytest.raises(KorrigoError, match='nothing was done'):
        with guard() as g:
            g.plan(1)
            g.perform('korrigo_ops.celery_health.restart', 'CeleryWorker', 'korrigo/celery',
                      lambda: (x for x in ()).throw(KorrigoError('could not restart')))
    assert FakeRemediation.instances[0].closed == 'rollback'


def test_more_actions_than_planned_or_unplanned_are_refused():
    with pytest.raises(KorrigoError, match='before it was planned'):
        with guard() as g:
            g.perform('korrigo_ops.x.y', 'T', '1', lambda: True)
    with pytest.raises(KorrigoError, match='more actions than the 1 planned'):
        with guard() as g:
            g.plan(1)
            g.perform('korrigo_ops.x.y', 'T', '1', lambda: True)
            g.perform('korrigo_ops.x.y', 'T', '2', lambda: True)
    assert [r['resource_id'] for r in rows_written(FakeRemediation.instances[0])] == ['1']  # it did happen


def test_a_concurrent_run_is_skipped_before_anything():
    with pytest.raises(ConcurrentRun):
        with guard(_locked=False):
            raise AssertionError('not reached')


def test_long_values_are_cut_to_the_columns():
    with guard() as g:
        g.plan(1)
        g.perform('korrigo_ops.media_storage.remove', 'T' * 80, 'p' * 400, lambda: True)
    row = rows_written(FakeRemediation.instances[0])[0]
    assert len(row['resource_type']) == 50 and len(row['resource_id']) == 255
    assert row['metadata']['resource_id'] == 'p' * 400


# --- the error edge of a missing grant (database.statement_error, SQLSTATE 42501) ------------------------------

class FakePgError(Exception):
    pgcode = '42501'

    def __init__(self, text, query=None):
        super(FakePgError, self).__init__(text)
        self.cursor = type('Cursor', (), {'query': query})()


@pytest.mark.parametrize('text,query,expected', [
    ('permission denied for table core_auditlog', b'WITH a AS (INSERT INTO core_auditlog (x) SELECT 1) SELECT 1',
     'permission denied: ops lacks INSERT on table core_auditlog (grant it, see playbooks/database_roles.yml)'),
    ('permission denied for table grading_copylock',
     'SELECT 1 FROM grading_copylock l FOR UPDATE OF l), d AS (DELETE FROM grading_copylock l',
     'permission denied: ops lacks SELECT/UPDATE/DELETE on table grading_copylock (grant it'),
    ('permission denied for sequence core_auditlog_id_seq', None,
     'permission denied: ops lacks USAGE on sequence core_auditlog_id_seq (grant it'),
    ('permission denied to terminate process\nDETAIL: Only roles with privileges of the "pg_signal_backend" role',
     None, 'permission denied: ops lacks membership in pg_signal_backend'),
])
def test_a_missing_grant_is_named(text, query, expected):
    from ansible_collections.korrigo.ops.plugins.module_utils.database import statement_error
    err = statement_error(FakePgError(text, query), None, {'login_user': 'ops'}, 'copylock')
    assert err.msg.startswith('copylock: ') and expected in err.msg and err.msg.endswith('nothing was changed')


def test_the_role_of_a_database_url_is_named():
    from ansible_collections.korrigo.ops.plugins.module_utils.database import statement_error
    err = statement_error(FakePgError('permission denied for table exams_copy', 'UPDATE exams_copy c SET x = 1'),
                          None, {'login_user': 'postgres', 'database_url': 'postgresql://remediate:pw@db/korrigo'},
                          'copy_status')
    assert 'remediate lacks UPDATE on table exams_copy' in err.msg
    assert err.details['missing_grant'] == {'role': 'remediate', 'privileges': ['UPDATE'], 'object': 'exams_copy',
                                            'type': 'table'}
