"""celery_health against the stack's real worker: ping, start/restart by compose labels, broker down, no answer."""
import time

import docker
import pytest

from conftest import run_module

BROKER = 'redis://127.0.0.1:56379/0'
# A Redis database no worker listens on: the broker answers, no worker ever does (a misconfigured worker).
SILENT_BROKER = 'redis://127.0.0.1:56379/9'
DOWN_BROKER = 'redis://127.0.0.1:1/0'


@pytest.fixture(name='celery_container')
def celery_container_fixture(stack):
    client = docker.from_env()
    labels = ['com.docker.compose.project=korrigo', 'com.docker.compose.service=celery']
    container = client.containers.list(all=True, filters={'label': labels})[0]
    yield container
    container.reload()
    if container.status != 'running':
        container.start()
    deadline = time.time() + 60
    while not run_module('celery_health', broker_url=BROKER)['healthy'] and time.time() < deadline:
        time.sleep(1)
    client.close()


def health(check_mode=False, **args):
    return run_module('celery_health', check_mode=check_mode, diff=True, broker_url=BROKER, **args)


def test_a_running_worker_answers(celery_container):
    result = health()
    assert result['healthy'] and result['changed'] is False and result['action'] == 'none'
    assert result['workers'][0]['name'].startswith('celery@') and result['workers'][0]['ok']
    assert result['queue_length'] == 0 and result['broker'] == {'reachable': True, 'error': None}


def test_a_stopped_worker_is_started_and_answers(celery_container):
    celery_container.stop(timeout=10)
    assert health()['healthy'] is False
    dry = health(check_mode=True, state='started', compose_project='korrigo')
    assert dry['changed'] is True and dry['action'] == 'started'
    assert dry['service']['containers'][0]['status'] == 'exited'
    celery_container.reload()
    assert celery_container.status == 'exited'  # check mode started nothing
    result = health(state='started', compose_project='korrigo')
    assert result['changed'] is True and result['healthy'] and result['diff']['after']['workers_answering'] == 1
    again = health(state='started', compose_project='korrigo')
    assert again['changed'] is False and again['action'] == 'none'


def test_restart_policy(celery_container):
    assert health(state='restarted', compose_project='korrigo')['changed'] is False  # if_unhealthy, healthy
    dry = health(check_mode=True, state='restarted', restart_policy='always', compose_project='korrigo')
    assert dry['changed'] is True and dry['action'] == 'restarted'
    started_at = celery_container.attrs['State']['StartedAt']
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at
    result = health(state='restarted', restart_policy='always', compose_project='korrigo')
    assert result['changed'] is True and result['healthy']
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] != started_at


def test_redis_down_is_reported_and_nothing_is_restarted(celery_container):
    result = run_module('celery_health', broker_url=DOWN_BROKER)
    assert result['healthy'] is False and result['broker']['reachable'] is False and not result.get('failed')
    started_at = celery_container.attrs['State']['StartedAt']
    result = run_module('celery_health', broker_url=DOWN_BROKER, state='restarted', compose_project='korrigo')
    assert result['failed'] and 'broker unreachable' in result['msg'] and 'nothing was started' in result['msg']
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at


def test_a_worker_that_never_answers_fails_with_what_was_seen(celery_container):
    result = run_module('celery_health', broker_url=SILENT_BROKER, state='restarted', compose_project='korrigo',
                        wait_timeout=5)
    assert result['failed'] and 'no Celery worker answered within 5s' in result['msg']
    assert result['service']['containers'][0]['status'] == 'running' and result['logs']


def test_bad_arguments(stack):
    assert 'needs compose_project' in run_module('celery_health', broker_url=BROKER, state='started')['msg']
    assert 'CELERY_BROKER_URL' in run_module('celery_health', broker_url='amqp://x')['msg']
    result = run_module('celery_health', broker_url=BROKER, state='started', compose_project='no-such-project')
    assert 'no container' in result['msg']
