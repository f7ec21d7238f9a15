"""The triage playbook (korrigo.ops.triage) against the stack seeded in each severity, run with the read-only role."""
import datetime
import json
import os
import subprocess
import urllib.request
import uuid

import pytest

from conftest import ROOT, VERSIONS, restart_service
from korrigo_stack import scenarios_latency

READ_ONLY = ['-e', 'triage_db_user=korrigo_readonly', '-e', 'triage_db_password=korrigo_readonly']
# The seeded database (its own one with KORRIGO_TEST_DB_SUFFIX; the stack's worker and backend use `korrigo`).
OUR_DATABASE = ['-e', 'korrigo_db_name=%s' % VERSIONS['head']]


def write_log(path, requests=20, errors=0):
    """A JSON log as Korrigo writes it: ``requests`` requests in the last minutes, ``errors`` of them 500s."""
    now = datetime.datetime.utcnow()
    with open(path, 'w') as handle:
        for i in range(requests):
            status = 500 if i < errors else 200
            stamp = (now - datetime.timedelta(seconds=30 + i)).strftime('%Y-%m-%d %H:%M:%S,000')
            handle.write(json.dumps({'timestamp': stamp, 'level': 'INFO', 'logger': 'metrics',
                                     'message': 'GET /api/copies/ %d' % status, 'request_id': uuid.uuid4().hex,
                                     'path': '/api/copies/', 'status_code': status, 'duration_ms': 12.5}) + '\n')
            if status == 500:
                handle.write(json.dumps({'timestamp': stamp, 'level': 'ERROR', 'logger': 'django.request',
                                         'message': 'Internal Server Error: /api/copies/',
                                         'exc_info': 'Traceback ...\nOperationalError: too many connections'})
                             + '\n')


@pytest.fixture
def triage(korrigo_head, tmp_path):
    korrigo_head.seed('db_roles')

    def run(*extra, log=None):
        log_file = tmp_path / 'django.log'
        write_log(str(log_file), **(log or {}))
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
        command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'triage.yml'),
                   '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', 'korrigo_report_dir=%s' % tmp_path,
                   '-e', 'korrigo_log_file=%s' % log_file, '-e', 'triage_latency_threshold_seconds=30'] \
            + READ_ONLY + OUR_DATABASE + list(extra)
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        with open(str(tmp_path / 'triage-korrigo-local.json')) as handle:
            return json.load(handle)
    return run


def test_healthy_stack_is_none(korrigo_head, triage):
    korrigo_head.seed('baseline')
    report = triage()
    assert report['severity'] == 'none', report['found']
    assert report['status'] == 'healthy'
    assert report['details']['verdict']['remediation_roles'] == []
    services = report['details']['facts']['services']
    assert all(services[name]['running'] for name in ('db', 'redis', 'backend', 'celery'))


def test_expired_locks_of_several_users_are_p3(korrigo_head, triage):
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    report = triage()
    assert report['severity'] == 'P3'
    assert report['details']['verdict']['remediation_roles'] == ['lock_conflicts']
    assert report['needs_human'][0].startswith('korrigo.ops.release_expired_locks (role korrigo.ops.lock_conflicts) <- ')
    assert report['status'] == 'needs a human'


def test_slow_endpoint_is_p3_naming_the_latency_playbook(korrigo_head, triage):
    # The backend's histograms count since it started: start from a clean slate, as after a deployment,
    # so that earlier tests' slow requests do not make every request look slow.
    restart_service('backend', 'http://127.0.0.1:58088/api/health/live/')
    korrigo_head.seed('baseline')
    for _request in range(60):  # ordinary traffic: one endpoint is slow, not every request
        with urllib.request.urlopen('http://127.0.0.1:58088/api/copies/', timeout=5) as answer:
            assert answer.status == 200
    scenarios_latency.slow_requests('http://127.0.0.1:58088', 0.6, 2)
    report = triage('-e', 'triage_latency_threshold_seconds=0.5')
    assert report['severity'] == 'P3'
    assert 'high_latency' in report['details']['verdict']['remediation_roles']


def test_audit_gaps_are_p2(korrigo_head, triage):
    korrigo_head.seed('baseline')
    korrigo_head.seed('audit')
    report = triage()
    assert report['severity'] == 'P2'
    verdict = report['details']['verdict']
    assert 'audit_events' in verdict['remediation_roles']
    assert any('audit trail gaps on 4 copies' in r for r in verdict['reasons']['P2'])


def test_error_rate_over_ten_percent_is_p1(korrigo_head, triage):
    korrigo_head.seed('baseline')
    report = triage(log={'requests': 20, 'errors': 3})
    assert report['severity'] == 'P1'
    assert any('error rate 15.0 %' in r for r in report['details']['verdict']['reasons']['P1'])
    assert any('OperationalError' in line for line in report['found'])


def test_database_down_is_p0_and_triage_still_reports(korrigo_head, triage):
    report = triage('-e', 'korrigo_db_port=1', '-e', 'korrigo_compose_project=korrigo-absent')
    assert report['severity'] == 'P0'
    reasons = report['details']['verdict']['reasons']['P0']
    assert any('database unreachable' in r for r in reasons) and any('service db is down' in r for r in reasons)
    assert any(line.startswith('not gathered: database') for line in report['needs_human'])


def test_triage_writes_nothing(korrigo_head, triage):
    korrigo_head.seed('audit')
    checksums = korrigo_head.checksums()
    triage()
    assert korrigo_head.checksums() == checksums
