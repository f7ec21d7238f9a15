"""filter/triage.py: the triage role's facts, gaps and report from what its read-only steps answered."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.triage import triage_facts, triage_gaps, triage_report
from ansible_collections.korrigo.ops.plugins.filter.verdicts import triage_verdict

LABELS = {'com.docker.compose.project': 'korrigo'}
KORRIGO = {'version': {'name': 'head'}, 'copies_by_status': {'READY': 3},
           'locks': {'total': 2, 'expired_total': 2, 'expired_by_owner': {'prof.martin': 2}}}


def results(**overrides):
    base = {
        'docker': {'containers': [dict(Names=['/korrigo-%s-1' % s], State='running',
                                       Labels=dict(LABELS, **{'com.docker.compose.service': s}))
                                  for s in ('db', 'redis', 'backend', 'celery')]},
        'workflow': {'ansible_facts': {'korrigo': KORRIGO}},
        'latency': {'ansible_facts': {'korrigo_latency': {'connections': {'total': 5, 'max_connections': 100},
                                                          'backlog': {'length': 0}, 'metrics': {'scraped': True}}}},
        'audit': {'gap_counts': {}, 'copies_with_gaps': 0},
        'log': {'ansible_facts': {'korrigo_log': {'exists': True, 'errors_total': 3, 'window_minutes': 60,
                                                  'requests': {'total': 20, 'error_rate': 0.15},
                                                  'signatures': [{'count': 3, 'signature': 'OperationalError'}]}}},
    }
    base.update(overrides)
    return base


def test_everything_answered():
    facts = triage_facts(results())
    assert facts['database'] == {'reachable': True, 'error': ''} and facts['services']['celery']['running']
    assert triage_gaps(results()) == []
    verdict = triage_verdict(facts)
    report = triage_report(facts, verdict, [], False, 60)
    assert (report['scenario'], report['korrigo_version'], report['severity']) == ('triage', 'head', 'P1')
    assert report['status'] == 'needs a human' and report['done'] == []
    assert report['needs_human'] == [
        'korrigo.ops.release_expired_locks (role korrigo.ops.lock_conflicts) <- 2 expired locks']
    assert report['found'][:5] == [
        'services: db=running, redis=running, backend=running, celery=running',
        'copies by status: {"READY": 3}',
        'locks: 2 (2 expired)',
        'database connections 5/100, celery backlog 0',
        'log (60 min): 3 errors, 20 requests, error rate 15.0 %',
    ]
    assert '3x OperationalError' in report['found'] and 'audit gaps: 0 copies' in report['found']
    assert 'P0-P3 reasons: P1, P2' in report['found']
    assert report['details'] == {'verdict': verdict, 'facts': facts}


def test_sources_that_did_not_answer_are_gaps_and_the_database_a_p0():
    failed = results(docker={'msg': 'no docker'}, workflow={'msg': 'connection refused'}, latency={'msg': 'x'},
                     audit={'msg': 'y'}, log={'ansible_facts': {'korrigo_log': {'exists': False}}})
    facts = triage_facts(failed)
    assert facts['services'] == {} and facts['korrigo'] == {} and facts['audit'] == {}
    assert triage_gaps(failed, log_file='/x/django.log') == [
        'docker: no docker', 'database: connection refused', 'latency facts: x', 'audit trail: y',
        'log file missing: /x/django.log']
    report = triage_report(facts, triage_verdict(facts), triage_gaps(failed), True, 60)
    assert report['severity'] == 'P0' and report['check_mode'] is True
    assert report['found'][0] == 'services: unknown' and report['korrigo_version'] == 'unknown'
    assert 'not gathered: database: connection refused' in report['needs_human']


def test_metrics_and_broker_problems_are_gaps():
    latency = {'ansible_facts': {'korrigo_latency': {'metrics': {'scraped': False, 'error': '401'},
                                                     'backlog': {'error': 'redis refused'}}}}
    assert triage_gaps(results(latency=latency)) == ['metrics: 401', 'broker: redis refused']


def test_bad_input_is_refused():
    with pytest.raises(AnsibleFilterError):
        triage_facts('nope')
    with pytest.raises(AnsibleFilterError):
        triage_report({}, {})
