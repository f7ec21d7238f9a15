"""korrigo_latency_facts against the stack: sessions, blockers, indexes, metrics, backlog; read-only role."""
import time

from korrigo_stack import scenarios_latency
from latency_helpers import held_sessions  # noqa: F401  pylint: disable=unused-import

METRICS = 'http://127.0.0.1:58088/metrics'
BROKER = 'redis://127.0.0.1:56379/0'


def latency(db, **args):
    result = db.run('korrigo_latency_facts', **args)
    assert result.get('failed') is not True, result
    assert result['changed'] is False
    return result['ansible_facts']['korrigo_latency']


def test_blocked_session_and_its_blocker(korrigo, held_sessions):  # noqa: F811
    pids = held_sessions(korrigo)
    time.sleep(1.2)
    facts = latency(korrigo, gather_subset=['sessions', 'connections'], idle_in_transaction_seconds=1,
                    long_running_seconds=1)
    sessions = facts['sessions']
    assert sessions['stale_idle_in_transaction'] >= 1 and sessions['blocked_total'] >= 1
    blocked = [b for b in sessions['blocked'] if b['pid'] == pids['waiter_pid']]
    assert len(blocked) == 1
    assert [b['pid'] for b in blocked[0]['blockers']] == [pids['blocker_pid']]
    assert blocked[0]['blockers'][0]['state'] == 'idle in transaction'
    assert 'FOR UPDATE' in blocked[0]['query']
    non_idle = dict((s['pid'], s) for s in sessions['non_idle'])
    assert non_idle[pids['blocker_pid']]['superuser'] is False
    assert facts['connections']['max_connections'] >= facts['connections']['total'] > 0


def test_indexes_the_playbook_names(korrigo):
    facts = latency(korrigo, gather_subset=['indexes', 'statements'])
    indexes = dict(('%s.%s' % (i['table'], i['column']), i) for i in facts['indexes'])
    status = indexes['exams_copy.status']
    assert status['present'] is False and status['plan']['seq_scan'] is True
    assert status['create_statement'] == ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "exams_copy_status_ops_idx" '
                                          'ON "exams_copy" ("status")')
    expires = indexes['grading_copylock.expires_at']
    assert expires['present'] is True and expires['create_statement'] is None
    assert 'idx_copylock_expires_at' in expires['indexes']
    assert [i['table'] for i in facts['missing_indexes']] == ['exams_copy']
    assert facts['pg_stat_statements'] == {'installed': False}


def test_slow_endpoint_in_metrics_and_backlog(korrigo_head):
    codes = scenarios_latency.slow_requests('http://127.0.0.1:58088', 0.6, 2)
    assert codes == [200, 200]
    facts = latency(korrigo_head, gather_subset=['metrics', 'backlog'], metrics_url=METRICS, broker_url=BROKER,
                    latency_threshold_seconds=0.5)
    metrics = facts['metrics']
    assert metrics['scraped'] is True and metrics['requests'] > 0
    slow = [e for e in metrics['slow_endpoints'] if e['path'] == '/api/_debug/slow/']
    assert slow and slow[0]['p95'] > 0.5
    assert facts['backlog']['queue'] == 'celery' and facts['backlog']['length'] >= 0


def test_unreachable_metrics_and_broker_are_findings_not_failures(korrigo_head):
    facts = latency(korrigo_head, gather_subset=['metrics', 'backlog'], metrics_url='http://127.0.0.1:1/metrics',
                    broker_url='redis://127.0.0.1:1/0', metrics_timeout=2)
    assert facts['metrics']['scraped'] is False and 'cannot scrape' in facts['metrics']['error']
    assert facts['backlog']['length'] is None and 'unreachable' in facts['backlog']['error']


def test_read_only_role_is_enough(korrigo_head):
    korrigo_head.seed('db_roles')
    facts = latency(korrigo_head, login_user='korrigo_readonly', login_password='korrigo_readonly',
                    metrics_url=METRICS, broker_url=BROKER)
    assert set(['sessions', 'connections', 'indexes', 'metrics', 'backlog']) <= set(facts)
