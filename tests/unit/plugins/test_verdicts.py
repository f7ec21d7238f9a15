"""Triage severity (appendix B), latency findings ranking and compose services, as pure logic."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.verdicts import compose_services, latency_findings, triage_verdict

UP = dict((name, {'running': True}) for name in ('db', 'redis', 'backend', 'celery'))


def korrigo(stuck=0, failed=0, in_progress=0, expired_by_owner=None):
    expired_by_owner = expired_by_owner or {}
    return {'stuck_imports': {'stuck_total': stuck},
            'finalizations': {'failed_total': failed, 'in_progress_total': in_progress},
            'locks': {'expired_total': sum(expired_by_owner.values()), 'expired_by_owner': expired_by_owner}}


def verdict(**facts):
    facts.setdefault('services', UP)
    return triage_verdict(facts)


def test_healthy_is_none():
    result = verdict(korrigo=korrigo())
    assert result['severity'] == 'none' and result['remediations'] == []


def test_worker_down_with_stuck_copies_is_p0():
    services = dict(UP, celery={'running': False})
    result = verdict(services=services, korrigo=korrigo(stuck=3))
    assert result['severity'] == 'P0' and result['remediation_roles'] == ['import_stuck']
    assert result['remediations'][0]['playbook'] == 'playbooks/recover_stuck_imports.yml'
    assert verdict(services=services, korrigo=korrigo())['severity'] == 'P1'


def test_database_down_is_p0():
    assert verdict(database={'reachable': False, 'error': 'refused'})['severity'] == 'P0'
    assert verdict(services=dict(UP, db={'running': False}))['severity'] == 'P0'


@pytest.mark.parametrize('stuck, failed, severity', [(11, 0, 'P1'), (6, 5, 'P1'), (10, 0, 'P2'), (1, 0, 'P2'), (0, 1, 'P2')])
def test_stuck_copies(stuck, failed, severity):
    result = verdict(korrigo=korrigo(stuck=stuck, failed=failed))
    assert result['severity'] == severity


def test_error_rate_over_ten_percent_is_p1():
    log = {'window_minutes': 60, 'requests': {'total': 100, 'error_rate': 0.11}}
    assert verdict(korrigo=korrigo(), log=log)['severity'] == 'P1'
    log['requests']['error_rate'] = 0.10
    assert verdict(korrigo=korrigo(), log=log)['severity'] == 'none'
    # No request in the log window: the metrics' rate is used.
    metrics = {'requests': 50, 'error_rate': 0.2}
    assert verdict(latency={'metrics': metrics}, log={'requests': {'total': 0}})['severity'] == 'P1'


def test_locks_one_user_is_p2_several_users_p3():
    one = verdict(korrigo=korrigo(expired_by_owner={'prof.martin': 3}))
    assert one['severity'] == 'P2' and one['remediation_roles'] == ['lock_conflicts']
    several = verdict(korrigo=korrigo(expired_by_owner={'prof.martin': 2, 'prof.durand': 3}))
    assert several['severity'] == 'P3'


def test_audit_gaps_are_p2_and_slowness_p3():
    audit = {'copies_with_gaps': 2, 'gap_counts': {'missing_import': 1, 'missing_validate': 1}}
    result = verdict(audit=audit)
    assert result['severity'] == 'P2' and result['remediation_roles'] == ['audit_events']
    slow = {'metrics': {'slow_endpoints': [{'method': 'GET', 'path': '/x', 'p95': 9.5}], 'overall': {'p95': 0.1}}}
    result = verdict(latency=slow)
    assert result['severity'] == 'P3' and result['remediation_roles'] == ['high_latency']
    slow['metrics']['overall']['p95'] = 6
    assert verdict(latency=slow)['severity'] == 'P1'


def test_highest_severity_wins_and_every_remediation_is_named():
    result = verdict(korrigo=korrigo(stuck=12, failed=1, expired_by_owner={'a': 1, 'b': 1}),
                     audit={'copies_with_gaps': 1, 'gap_counts': {'missing_import': 1}})
    assert result['severity'] == 'P1'
    assert result['remediation_roles'] == ['import_stuck', 'finalization_failing', 'lock_conflicts', 'audit_events']
    assert result['reasons']['P2'] and result['reasons']['P3']


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
