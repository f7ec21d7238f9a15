"""pg_sessions: terminate the stalled sessions, never ours or a superuser's, guarded and audited."""
import time

from latency_helpers import held_sessions  # noqa: F401  pylint: disable=unused-import

AUDIT_ACTION = 'korrigo_ops.pg_sessions.terminate'


def alive(db, pid):
    return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)) == 1


def test_idle_in_transaction_blocker_is_terminated_and_audited(korrigo, held_sessions):  # noqa: F811
    pids = held_sessions(korrigo)
    time.sleep(1.2)
    checksums = korrigo.checksums()
    dry = korrigo.run('pg_sessions', check_mode=True, diff=True, idle_in_transaction_seconds=1)
    assert dry.get('failed') is not True, dry
    assert dry['changed'] is True and dry['count'] == 1
    assert [a['pid'] for a in dry['actions']] == [pids['blocker_pid']]
    assert dry['actions'][0]['reason'] == 'idle_in_transaction'
    assert alive(korrigo, pids['blocker_pid']) and korrigo.checksums() == checksums
    assert dry['diff']['after']['sessions'][str(pids['blocker_pid'])]['state'] == 'terminated'

    real = korrigo.run('pg_sessions', idle_in_transaction_seconds=1)
    assert real['changed'] is True and real['count'] == 1 and real['audit_rows'] == 1
    assert not alive(korrigo, pids['blocker_pid'])
    rows = korrigo.query("SELECT a.resource_type, a.resource_id, a.metadata, u.username FROM core_auditlog a "
                         "JOIN auth_user u ON u.id = a.user_id WHERE a.action = %s", (AUDIT_ACTION,))
    assert len(rows) == 1 and rows[0]['resource_type'] == 'PostgresSession'
    assert rows[0]['resource_id'] == str(pids['blocker_pid']) and rows[0]['username'] == 'korrigo-ops'
    assert rows[0]['metadata']['application_name'] == 'korrigo-latency-blocker'
    # The waiter got its row lock once the blocker was gone; nothing is left to terminate.
    deadline = time.time() + 5
    while time.time() < deadline and korrigo.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'", (pids['waiter_pid'],)):
        time.sleep(0.1)
    again = korrigo.run('pg_sessions', idle_in_transaction_seconds=1)
    assert again['changed'] is False and again['count'] == 0


def test_long_running_waiter_superusers_and_own_sessions(korrigo, held_sessions):  # noqa: F811
    pids = held_sessions(korrigo)
    # The superuser test session itself, idle in a transaction: skipped unless asked.
    korrigo.conn.autocommit = False
    korrigo.query("SELECT 1 AS x")
    time.sleep(1.2)
    try:
        result = korrigo.run('pg_sessions', check_mode=True, running_seconds=1, idle_in_transaction_seconds=1)
        selected = sorted(a['pid'] for a in result['actions'])
        assert selected == sorted([pids['blocker_pid'], pids['waiter_pid']])
        reasons = dict((a['pid'], a['reason']) for a in result['actions'])
        assert reasons[pids['waiter_pid']] == 'long_running'
        assert [s['pid'] for s in result['skipped_superusers']] != []
        with_su = korrigo.run('pg_sessions', check_mode=True, idle_in_transaction_seconds=1, include_superusers=True)
        assert len(with_su['actions']) == 2
        only = korrigo.run('pg_sessions', check_mode=True, running_seconds=1, pids=[pids['waiter_pid']])
        assert [a['pid'] for a in only['actions']] == [pids['waiter_pid']]
    finally:
        korrigo.conn.rollback()
        korrigo.conn.autocommit = True


def test_guards(korrigo, held_sessions):  # noqa: F811
    pids = held_sessions(korrigo)
    time.sleep(1.2)
    refused = korrigo.run('pg_sessions', running_seconds=1, idle_in_transaction_seconds=1, max_changes=1)
    assert refused['failed'] is True and 'more than max_changes=1' in refused['msg']
    assert alive(korrigo, pids['blocker_pid']) and alive(korrigo, pids['waiter_pid'])
    assert 'empty selector' in korrigo.run('pg_sessions')['msg']
    assert korrigo.run('pg_sessions', idle_in_transaction_seconds=0)['failed'] is True
    assert korrigo.scalar("SELECT count(*) FROM core_auditlog WHERE action = %s", (AUDIT_ACTION,)) == 0
