"""filter/verdicts.py: latency findings ranking, compose services, and the verdict filters' edge (the severity
table itself is pinned in tests/unit/plugins/module_utils/test_severity.py)."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.verdicts import (
    FilterModule, compose_services, latency_decision, latency_findings, latency_todo, scenario_verdict, triage_verdict,
)
from ansible_collections.korrigo.ops.plugins.module_utils import severity


def test_verdict_filters_are_the_severity_module():
    facts = {'korrigo': {'locks': {'expired_total': 3, 'expired_by_owner': {'prof.martin': 3}}}}
    assert triage_verdict(facts) == severity.assess(facts)
    assert scenario_verdict('lock_conflicts', facts)['severity'] == 'P2'
    assert set(['triage_verdict', 'scenario_verdict']) <= set(FilterModule().filters())


@pytest.mark.parametrize('call', [
    lambda: triage_verdict('nope'),
    lambda: scenario_verdict('no_such_scenario', {}),
    lambda: scenario_verdict('lock_conflicts', 'nope'),
])
def test_verdict_filters_refuse_bad_input_as_filter_errors(call):
    with pytest.raises(AnsibleFilterError):
        call()


def test_latency_findings_ranked():
    facts = {
        'thresholds': {'idle_in_transaction_seconds': 60, 'long_running_seconds': 300},
        'sessions': {'stale_idle_in_transaction': 1, 'long_running': 0, 'non_idle_total': 2,
                     'blocked': [{'pid': 7, 'query_seconds': 42, 'blockers': [
                         {'pid': 6, 'application_name': 'gunicorn', 'state': 'idle in transaction'}]}]},
        'connections': {'total': 9, 'max_connections': 100, 'used_ratio': 0.09},
        'backlog': {'queue': 'celery', 'length': 150},
        'metrics': {'scraped': True, 'latency_threshold_seconds': 5, 'slow_endpoints': [
            {'method': 'GET', 'path': '/api/_debug/slow/', 'p50': 5, 'p95': 9.5, 'p99': 9.9, 'count': 3}]},
        'missing_indexes': [{'table': 'exams_copy', 'column': 'status', 'hot_query': 'q', 'plan': {'node': 'Seq Scan'},
                             'create_statement': 'CREATE INDEX CONCURRENTLY ...'}],
        'pg_stat_statements': {'installed': False},
    }
    found = latency_findings(facts)
    assert [f['kind'] for f in found] == ['lock_contention', 'idle_in_transaction', 'backlog', 'slow_endpoint',
                                          'missing_index', 'pg_stat_statements_absent']
    assert [f['rank'] for f in found] == list(range(1, 7))
    assert 'pid 6 (gunicorn, idle in transaction)' in found[0]['why']
    assert 'CREATE INDEX CONCURRENTLY' in found[4]['action']
    assert latency_findings({'backlog': {'length': 100}}) == []


def test_compose_services_by_label():
    containers = [
        {'Names': ['/korrigo_db_1'], 'State': 'running', 'Status': 'Up',
         'Labels': {'com.docker.compose.project': 'korrigo', 'com.docker.compose.service': 'db'}},
        {'Names': ['/korrigo-celery-1'], 'State': 'exited', 'Status': 'Exited (0)',
         'Labels': {'com.docker.compose.project': 'korrigo', 'com.docker.compose.service': 'celery'}},
        {'Names': ['/other_db_1'], 'State': 'running',
         'Labels': {'com.docker.compose.project': 'other', 'com.docker.compose.service': 'redis'}},
    ]
    services = compose_services(containers)
    assert services['db']['running'] is True and services['db']['containers'] == ['korrigo_db_1']
    assert services['celery'] == {'running': False, 'state': 'exited', 'status': 'Exited (0)',
                                  'containers': ['korrigo-celery-1']}
    assert services['redis']['state'] == 'missing' and services['backend']['running'] is False
    with pytest.raises(AnsibleFilterError):
        compose_services('nope')


def test_workers_not_answering_outranks_the_backlog():
    facts = {'backlog': {'queue': 'celery', 'length': 150}, 'workers': {'healthy': False, 'workers': []}}
    kinds = [f['kind'] for f in latency_findings(facts)]
    assert kinds == ['workers_not_answering', 'backlog']
    busy = {'backlog': {'queue': 'celery', 'length': 150},
            'workers': {'healthy': True, 'workers': [{'name': 'celery@w1', 'active': 2, 'reserved': 4}]}}
    assert [f['kind'] for f in latency_findings(busy)] == ['backlog', 'workers_busy']


def test_latency_remediations_run_only_when_enabled_and_triggered():
    facts = {'sessions': {'stale_idle_in_transaction': 0, 'long_running': 2}, 'missing_indexes': [{'table': 't'}],
             'backlog': {'length': 150}, 'workers': {'healthy': False}}
    assert latency_decision(facts) == {'terminate': False, 'create_indexes': False, 'restart_worker': False}
    assert latency_decision(facts, terminate_sessions=True)['terminate'] is False
    on = latency_decision(facts, 'true', 'true', True, True, '100')
    assert on == {'terminate': True, 'create_indexes': True, 'restart_worker': True}
    assert latency_decision(dict(facts, workers={}), restart_worker=True)['restart_worker'] is False
    assert latency_decision(facts, restart_worker=True, backlog_threshold=150)['restart_worker'] is False


def test_latency_todo_drops_what_the_remediations_handled():
    findings = [{'kind': 'lock_contention', 'automatic': True, 'todo': 'a'},
                {'kind': 'connections', 'automatic': False, 'todo': 'b'},
                {'kind': 'missing_index', 'automatic': True, 'todo': 'c'}]
    assert latency_todo(findings) == ['b', 'a', 'c']
    assert latency_todo(findings, terminated=True) == ['b', 'c']
    assert latency_todo(findings, terminated=True, indexes_created=True) == ['b']
