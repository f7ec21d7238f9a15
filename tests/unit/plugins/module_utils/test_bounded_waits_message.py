"""What a person reads when a statement gave up waiting for a lock (SQLSTATE 55P03) or ran too long."""
import psycopg2
import psycopg2.errors
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import database
from ansible_collections.korrigo.ops.plugins.module_utils.database import busy_message, describe_holder, statement_error

BACKEND = {
    'pid': 1234, 'application_name': 'korrigo-backend', 'usename': 'korrigo', 'state': 'idle in transaction',
    'state_since': '2026-12-01 10:00:00 UTC', 'state_seconds': 42.0, 'query_start': '2026-12-01 09:59:59 UTC',
    'xact_start': '2026-12-01 09:59:58 UTC', 'query': 'SELECT ... FOR UPDATE', 'relations': ['exams_copy'],
    'modes': ['RowShareLock'],
}
TABLES = ('grading_copylock', 'exams_copy')


def test_message_names_table_pid_application_state_and_since():
    msg = busy_message('copylock', TABLES, [BACKEND], 1000)
    assert msg == (
        "exams_copy busy: held by pid 1234 (application_name 'korrigo-backend', user korrigo, "
        "idle in transaction since 2026-12-01 10:00:00 UTC (42.0s), query started 2026-12-01 09:59:59 UTC, "
        "holding RowShareLock on exams_copy); copylock gave up after lock_timeout_ms=1000: nothing was changed; "
        "retry later (a session idle in transaction for long can be ended with korrigo.ops.pg_sessions)")


def test_busy_tables_follow_the_statement_order_and_every_holder_is_listed():
    other = dict(BACKEND, pid=99, application_name='korrigo-worker', state='active', relations=['grading_copylock'],
                 modes=['RowExclusiveLock'])
    msg = busy_message('copylock', TABLES, [BACKEND, other], 5000)
    assert msg.startswith('grading_copylock/exams_copy busy: held by pid 1234 (')
    assert "; pid 99 (application_name 'korrigo-worker', user korrigo, active since" in msg
    assert 'nothing was changed; retry later' in msg


def test_many_holders_are_capped():
    holders = [dict(BACKEND, pid=pid, state='active') for pid in range(1, 9)]
    msg = busy_message('copylock', TABLES, holders, 5000)
    assert msg.count('pid ') == 5 and 'and 3 more session(s)' in msg
    assert 'pg_sessions' not in msg  # only suggested for sessions idle in a transaction


def test_holder_gone_before_the_lookup():
    msg = busy_message('copy_status', ('exams_copy',), [], 5000)
    assert msg.startswith('exams_copy busy: the session holding the lock ended it')
    assert msg.endswith('copy_status gave up after lock_timeout_ms=5000: nothing was changed; retry later')


def test_holder_hidden_from_an_unprivileged_role():
    line = describe_holder({'pid': 5, 'application_name': 'korrigo-backend', 'state': None, 'relations': ['exams_copy'],
                            'modes': ['RowShareLock']})
    assert line == ("pid 5 (application_name 'korrigo-backend', state not visible to login_user, "
                    "holding RowShareLock on exams_copy)")


class FakeConn(object):
    def __init__(self):
        self.rollbacks = 0

    def get_backend_pid(self):
        return 4321

    def rollback(self):
        self.rollbacks += 1


class LockNotAvailable(psycopg2.errors.LockNotAvailable):
    pgcode = '55P03'


PARAMS = {'lock_timeout_ms': 1000, 'statement_timeout_ms': 60000}


def test_lock_timeout_rolls_back_first_then_looks_holders_up(monkeypatch):
    conn, seen = FakeConn(), {}

    def holders(params, tables, own_pid):
        seen.update(rollbacks=conn.rollbacks, tables=tables, own_pid=own_pid)
        return [BACKEND]
    monkeypatch.setattr(database, 'lock_holders', holders)
    err = statement_error(LockNotAvailable('canceling statement due to lock timeout'), conn, PARAMS, 'copylock', TABLES)
    assert seen == {'rollbacks': 1, 'tables': TABLES, 'own_pid': 4321}
    assert err.msg.startswith("exams_copy busy: held by pid 1234 (application_name 'korrigo-backend'")
    assert err.details == {'lock_holders': [BACKEND], 'lock_timeout_ms': 1000}


def test_statement_timeout_says_which_limit():
    class Canceled(psycopg2.errors.QueryCanceled):
        pgcode = '57014'
    err = statement_error(Canceled('canceling statement due to statement timeout'), FakeConn(), PARAMS, 'audit_trail')
    assert err.msg == ('audit_trail: a statement ran longer than statement_timeout_ms=60000 and was cancelled: '
                       'nothing was changed; raise statement_timeout_ms or narrow the selector')


def test_other_errors_keep_their_text():
    err = statement_error(psycopg2.ProgrammingError('column "x" does not exist'), FakeConn(), PARAMS, 'copylock')
    assert err.msg == 'copylock failed, nothing was changed: column "x" does not exist'


@pytest.mark.parametrize('failure', ['gathering Korrigo facts failed'])
def test_failure_prefix(failure):
    err = statement_error(psycopg2.ProgrammingError('boom'), FakeConn(), PARAMS, 'korrigo_facts', failure=failure)
    assert err.msg == 'gathering Korrigo facts failed: boom'
