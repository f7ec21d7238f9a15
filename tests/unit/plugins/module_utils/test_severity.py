"""module_utils/severity.py: the one table of P0-P3 and of report statuses, for triage and every scenario report."""
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.severity import (
    PLAYBOOKS, SCENARIOS, assess, concurrent_run_skipped, scenario_verdict, status,
)

UP = dict((name, {'running': True}) for name in ('db', 'redis', 'backend', 'celery'))


def korrigo(stuck=0, failed=0, interrupted=0, running=0, expired_by_owner=None):
    expired_by_owner = expired_by_owner or {}
    return {'stuck_imports': {'stuck_total': stuck},
            'finalizations': {'failed_total': failed, 'in_progress_total': interrupted + running,
                              'in_progress_stale': interrupted},
            'locks': {'expired_total': sum(expired_by_owner.values()), 'expired_by_owner': expired_by_owner}}


def slow(endpoints=0, overall=0.1):
    return {'metrics': {'overall': {'p95': overall},
                        'slow_endpoints': [{'method': 'GET', 'path': '/e%d' % i, 'p95': 9.5} for i in range(endpoints)]}}


def sessions(**counts):
    return {'sessions': dict({'blocked_total': 0, 'stale_idle_in_transaction': 0, 'long_running': 0}, **counts)}


def log(rate, total=100):
    return {'window_minutes': 60, 'requests': {'total': total, 'error_rate': rate}}


def audit(gaps):
    return {'copies_with_gaps': gaps, 'gap_counts': {'missing_import': gaps}}


CELERY_DOWN = dict(UP, celery={'running': False})
NO_WORKER = {'healthy': False, 'queue_length': 0}

# (case, facts, severity): appendix B as triage implements it, for every scenario's facts.
TABLE = [
    ('nothing', {'korrigo': korrigo()}, 'none'),
    ('database unreachable', {'database': {'reachable': False, 'error': 'refused'}}, 'P0'),
    ('db service down', {'services': dict(UP, db={'running': False})}, 'P0'),
    ('redis service down', {'services': dict(UP, redis={'running': False})}, 'P0'),
    ('backend service down', {'services': dict(UP, backend={'running': False})}, 'P0'),
    ('celery service down, copies wait', {'services': CELERY_DOWN, 'korrigo': korrigo(stuck=3)}, 'P0'),
    ('celery service down, tasks wait', {'services': CELERY_DOWN, 'latency': {'backlog': {'length': 4}}}, 'P0'),
    ('no worker answers, copies wait', {'workers': NO_WORKER, 'korrigo': korrigo(stuck=1)}, 'P0'),
    ('no worker answers, tasks wait', {'workers': {'healthy': False, 'queue_length': 7}}, 'P0'),
    ('celery service down, nothing waits', {'services': CELERY_DOWN, 'korrigo': korrigo()}, 'P1'),
    ('no worker answers, nothing waits', {'workers': NO_WORKER, 'korrigo': korrigo()}, 'P1'),
    ('11 stuck imports', {'korrigo': korrigo(stuck=11)}, 'P1'),
    ('11 failed finalizations', {'korrigo': korrigo(failed=11)}, 'P1'),
    ('6 stuck + 5 failed', {'korrigo': korrigo(stuck=6, failed=5)}, 'P1'),
    ('6 failed + 5 interrupted', {'korrigo': korrigo(failed=6, interrupted=5)}, 'P1'),
    ('error rate 11 %', {'log': log(0.11)}, 'P1'),
    ('error rate from the metrics', {'log': log(0, total=0), 'latency': {'metrics': {'requests': 50, 'error_rate': 0.2}}},
     'P1'),
    ('every request slow', {'latency': slow(endpoints=1, overall=6)}, 'P1'),
    ('10 stuck imports', {'korrigo': korrigo(stuck=10)}, 'P2'),
    ('1 stuck import', {'korrigo': korrigo(stuck=1)}, 'P2'),
    ('1 failed finalization', {'korrigo': korrigo(failed=1)}, 'P2'),
    ('1 interrupted finalization', {'korrigo': korrigo(interrupted=1)}, 'P2'),
    ('expired locks of one user', {'korrigo': korrigo(expired_by_owner={'prof.martin': 3})}, 'P2'),
    ('audit gaps', {'audit': audit(2)}, 'P2'),
    ('slow endpoint', {'latency': slow(endpoints=1)}, 'P3'),
    ('blocked session', {'latency': sessions(blocked_total=1)}, 'P3'),
    ('idle in transaction', {'latency': sessions(stale_idle_in_transaction=2)}, 'P3'),
    ('long-running query', {'latency': sessions(long_running=1)}, 'P3'),
    ('expired locks of several users', {'korrigo': korrigo(expired_by_owner={'a': 2, 'b': 3})}, 'P3'),
    ('error rate 10 % exactly', {'log': log(0.10)}, 'none'),
    ('finalize still running (not stale)', {'korrigo': korrigo(running=4)}, 'none'),
    ('workers answering with a backlog', {'workers': {'healthy': True, 'queue_length': 500}}, 'none'),
]


@pytest.mark.parametrize('case, facts, expected', TABLE, ids=[case for case, _f, _s in TABLE])
def test_the_table(case, facts, expected):
    assert assess(facts)['severity'] == expected, case


@pytest.mark.parametrize('case, facts, expected', TABLE, ids=[case for case, _f, _s in TABLE])
def test_triage_and_every_scenario_report_agree(case, facts, expected):
    for scenario in SCENARIOS:
        assert scenario_verdict(scenario, facts)['severity'] == expected, (case, scenario)


def test_the_disagreements_of_old_are_gone():
    # One expired-lock owner: P2 in triage, and now in lock_conflicts' report too (it used to say P3).
    one_owner = {'korrigo': korrigo(expired_by_owner={'prof.martin': 1})}
    assert scenario_verdict('lock_conflicts', one_owner)['severity'] == assess(one_owner)['severity'] == 'P2'
    # Worker down with stuck imports: P0 in triage, and in import_stuck's report (it used to say P2).
    stuck_no_worker = {'korrigo': korrigo(stuck=2), 'workers': NO_WORKER}
    assert scenario_verdict('import_stuck', stuck_no_worker)['severity'] == 'P0'
    # Finalizations: the threshold is the same stuck_p1 as triage's, not a hard-coded 10.
    eleven = {'korrigo': korrigo(failed=11)}
    assert scenario_verdict('finalization_failing', eleven, stuck_p1=20)['severity'] == 'P2'
    assert assess(eleven, stuck_p1=20)['severity'] == 'P2'


def test_thresholds_arrive_as_strings_from_the_inventory():
    assert assess({'korrigo': korrigo(stuck=11)}, stuck_p1='20')['severity'] == 'P2'
    assert assess({'latency': slow(overall=6)}, latency_threshold='30')['severity'] == 'none'
    assert assess({'log': log(0.2)}, error_rate_p1='0.25')['severity'] == 'none'


def test_highest_severity_wins_and_every_remediation_is_named_by_its_installed_name():
    result = assess({'korrigo': korrigo(stuck=12, failed=1, expired_by_owner={'a': 1, 'b': 1}), 'audit': audit(1),
                     'latency': slow(endpoints=1)})
    assert result['severity'] == 'P1'
    assert result['remediation_roles'] == ['import_stuck', 'finalization_failing', 'lock_conflicts', 'high_latency',
                                           'audit_events']
    assert [r['playbook'] for r in result['remediations']] == [playbook for _role, playbook in PLAYBOOKS]
    assert [r['role_name'] for r in result['remediations']] == ['korrigo.ops.%s' % role for role, _p in PLAYBOOKS]
    assert result['reasons']['P2'] and result['reasons']['P3'] and result['stuck_copies'] == 13


def test_worker_down_names_the_import_remediation():
    result = assess({'services': CELERY_DOWN, 'korrigo': korrigo()})
    assert result['remediation_roles'] == ['import_stuck'] and result['services_down'] == ['celery']
    assert result['remediations'][0]['playbook'] == 'korrigo.ops.recover_stuck_imports'


def test_healthy_says_no_incident():
    result = assess({'services': UP, 'korrigo': korrigo()})
    assert result['summary'] == ['no incident found'] and result['remediations'] == []


# (severity, done, needs_human, check_mode, skipped, failure) -> status
STATUSES = [
    (('P2', 1, 0, False, False, 'the worker was not brought back'), 'failed: the worker was not brought back'),
    (('P2', 1, 0, False, True, ''), 'skipped: another run in progress'),
    (('P3', 2, 0, False, False, ''), 'resolved'),
    (('P3', 2, 0, True, False, ''), 'dry run: would resolve'),
    (('P2', 2, 1, False, False, ''), 'partly resolved: needs a human'),
    (('P2', 2, 1, True, False, ''), 'dry run: would partly resolve: needs a human'),
    (('none', 0, 0, False, False, ''), 'healthy'),
    (('none', 0, 3, True, False, ''), 'healthy'),   # advice (an orphaned directory, an index to add) is no incident
    (('P1', 0, 1, False, False, ''), 'needs a human'),
    (('P2', 0, 0, False, False, ''), 'unchanged'),
]


@pytest.mark.parametrize('args, expected', STATUSES)
def test_status_table(args, expected):
    assert status(*args) == expected


def test_status_counts_lists_and_reads_skips_from_module_results():
    assert status('P2', ['released IMPORT-1'], [], False) == 'resolved'
    assert concurrent_run_skipped([{'skipped': True}, {'changed': False, 'skipped_concurrent_run': True}])
    assert not concurrent_run_skipped([{'skipped': True, 'skip_reason': 'Conditional result was False'}, {}])
    assert not concurrent_run_skipped(False)
    assert status('P2', [], [], False, [{}, {'skipped_concurrent_run': True}]) == 'skipped: another run in progress'
    with pytest.raises(ValueError):
        status('P5')


def test_scenario_verdict_reports_the_severity_after():
    before, after = {'korrigo': korrigo(expired_by_owner={'a': 1, 'b': 2})}, {'korrigo': korrigo()}
    verdict = scenario_verdict('lock_conflicts', before, after, [{'kind': 'release_lock'}] * 3, [], False)
    assert (verdict['severity'], verdict['status'], verdict['severity_after']) == ('P3', 'resolved', 'none')
    assert verdict['reasons']['P3'] == ['3 expired locks of 2 users (cleanup handles them)']
    with pytest.raises(ValueError):
        scenario_verdict('nope', before)


def test_worst_is_the_one_severity_order():
    from ansible_collections.korrigo.ops.plugins.module_utils.severity import worst
    assert worst(['P3', 'none', 'P1', 'P2']) == 'P1'
    assert worst(['none']) == 'none'
    assert worst(['?', None]) is None and worst([]) is None
