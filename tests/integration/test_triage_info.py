"""korrigo_triage_info against the stack: each source answers what its own module answers, and a source that fails
fails alone."""
import json
import subprocess

import pytest

from conftest import run_module
from test_triage import write_log

METRICS_URL = 'http://127.0.0.1:58088/metrics'
BROKER_URL = 'redis://127.0.0.1:56379/0'
WORKFLOW = ['copies', 'stuck_imports', 'finalizations', 'locks', 'audit']
# Read at the moment of each read: they differ between two reads of the same data.
VOLATILE = ('checked_at_epoch', 'until', 'since', 'age_seconds', 'expired_since_seconds')


def steady(value):
    if isinstance(value, dict):
        return dict((k, steady(v)) for k, v in value.items() if k not in VOLATILE)
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


@pytest.fixture
def seeded(korrigo_head, tmp_path):
    korrigo_head.seed('baseline')  # batch uploads: no IMPORT/VALIDATE event, empty pdf_source
    korrigo_head.seed('locks')
    korrigo_head.seed('import_stuck')  # individual uploads in STAGING without booklet, imports without pages
    korrigo_head.seed('audit')  # copies with real gaps, beside the normal ones
    log = str(tmp_path / 'django.log')
    write_log(log, requests=20, errors=3)
    return log


def read(korrigo, log, **args):
    return korrigo.run('korrigo_triage_info', metrics_url=METRICS_URL, broker_url=BROKER_URL, log_path=log,
                       list_limit=20, **args)


def test_each_source_is_what_its_own_module_returns(korrigo_head, seeded):
    result = read(korrigo_head, seeded)
    assert not result.get('failed') and result['changed'] is False, result
    sources = result['sources']
    assert set(sources) == {'docker', 'latency', 'workflow', 'audit', 'log'}
    assert not any(s.get('failed') for s in sources.values()), sources

    workflow = korrigo_head.run('korrigo_facts', gather_subset=WORKFLOW, list_limit=20)['ansible_facts']
    assert steady(sources['workflow']['ansible_facts']) == steady(workflow)
    assert sources['audit'] == workflow['korrigo']['audit'] and sources['audit']['copies_with_gaps'] > 0
    assert sources['workflow']['ansible_facts']['korrigo']['stuck_imports']['stuck_total'] > 0

    log = run_module('korrigo_log_facts', path=seeded)['ansible_facts']
    assert steady(sources['log']['ansible_facts']) == steady(log)
    assert log['korrigo_log']['requests']['errors_5xx'] == 3

    latency = korrigo_head.run('korrigo_latency_facts', gather_subset=['metrics', 'sessions', 'connections', 'backlog'],
                               metrics_url=METRICS_URL, broker_url=BROKER_URL)['ansible_facts']['korrigo_latency']
    mine = sources['latency']['ansible_facts']['korrigo_latency']
    assert set(mine) == set(latency) and mine['thresholds'] == latency['thresholds']
    assert mine['metrics']['scraped'] and mine['backlog']['length'] == latency['backlog']['length']
    assert mine['connections']['max_connections'] == latency['connections']['max_connections']

    names = subprocess.run(['docker', 'ps', '-a', '--filter', 'label=com.docker.compose.project=korrigo',
                            '--format', '{{.Names}}'], capture_output=True, text=True, check=True).stdout.split()
    containers = sources['docker']['containers']
    assert sorted(c['Names'][0].lstrip('/') for c in containers) == sorted(names)
    assert all({'State', 'Status', 'Labels'} <= set(c) for c in containers)
    assert set(result['seconds']) == {'docker', 'latency', 'workflow', 'log'}


def test_check_mode_reads_the_same(korrigo_head, seeded):
    before = korrigo_head.checksums()
    real, dry = read(korrigo_head, seeded), read(korrigo_head, seeded, _ansible_check_mode=True)
    assert korrigo_head.checksums() == before
    assert steady(dry['sources']['workflow']) == steady(real['sources']['workflow'])
    assert dry['changed'] is False


def test_an_unreachable_docker_daemon_fails_that_source_alone(korrigo_head, seeded, tmp_path):
    missing = 'unix://%s' % (tmp_path / 'no-docker.sock')
    result = read(korrigo_head, seeded, docker_host=missing)
    assert not result.get('failed'), result
    docker = result['sources']['docker']
    assert docker['failed'] and 'cannot reach the Docker daemon at %s' % missing in docker['msg']
    assert 'ansible_facts' in result['sources']['workflow'] and 'ansible_facts' in result['sources']['log']


def test_a_database_that_is_down_fails_latency_and_workflow_only(korrigo_head, seeded):
    result = read(korrigo_head, seeded, login_port=1, connect_timeout=2)
    assert not result.get('failed'), result
    sources = result['sources']
    for name in ('latency', 'workflow', 'audit'):
        assert sources[name]['failed'] and sources[name]['msg'], (name, sources[name])
    assert sources['audit'] == sources['workflow']
    assert sources['docker']['containers'] and 'ansible_facts' in sources['log']


def test_a_missing_log_is_a_finding_not_a_failure(korrigo_head, tmp_path):
    result = korrigo_head.run('korrigo_triage_info', sources=['log'], log_path=str(tmp_path / 'none.log'))
    assert set(result['sources']) == {'log'}
    assert result['sources']['log']['ansible_facts']['korrigo_log']['exists'] is False


@pytest.mark.parametrize('args, message', [
    ({'list_limit': -1, 'log_path': '/dev/null'}, 'list_limit must not be negative'),
    ({'sources': []}, 'sources is empty'),
    ({'sources': ['log'], 'log_window_minutes': -5}, 'log_window_minutes must not be negative (got -5); log_path is required'),
    ({'sources': ['docker'], 'docker_host': 'ssh://admin@school.example.org'}, None),
])
def test_invalid_options_fail_before_any_read(korrigo_head, args, message):
    result = korrigo_head.run('korrigo_triage_info', **args)
    if message:
        assert result['failed'] and message in result['msg'], result
        assert 'sources' not in result
    else:  # a daemon it cannot speak to is that source's failure, named
        assert 'ssh://' in result['sources']['docker']['msg']


def test_secrets_are_not_logged(korrigo_head, seeded):
    result = read(korrigo_head, seeded, metrics_token='s3cret-token')
    logged = result['invocation']['module_args']
    assert logged['metrics_token'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert logged['login_password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert 's3cret-token' not in json.dumps(result) and 'stack-secret' not in json.dumps(result)
