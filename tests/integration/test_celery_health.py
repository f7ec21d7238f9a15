"""celery_health against the stack's real worker: ping, start/restart by compose labels, broker down, no answer;
diagnosis without Docker, manager none, an unreachable manager, identity refusal, the import_stuck role with
korrigo_worker_manager=none. Every test leaves the worker container running and answering (others need it)."""
import json
import os
import subprocess
import time

import docker
import psycopg2
import pytest
from korrigo_stack import seed as stack_seed

from conftest import DB, ROOT, VERSIONS, run_module

BROKER = 'redis://127.0.0.1:56379/0'
# A Redis database no worker listens on: the broker answers, no worker ever does (a misconfigured worker).
SILENT_BROKER = 'redis://127.0.0.1:56379/9'
DOWN_BROKER = 'redis://127.0.0.1:1/0'
NO_DOCKER = 'unix:///nonexistent.sock'
# A start or restart writes its audit row in (and takes its advisory lock on) the HEAD test database.
GUARD_DB = dict(DB, login_db=VERSIONS['head'])


@pytest.fixture(name='celery_container')
def celery_container_fixture(stack, databases):
    # The guard of a start or restart needs its remediation user in the database it audits to (GUARD_DB): seeded
    # here, whatever the test before left there (a test's reset truncates the users too).
    conn = psycopg2.connect(databases['head'])
    try:
        stack_seed.reset(conn)
        stack_seed.seed(conn, 'baseline')
    finally:
        conn.close()
    client = docker.from_env()
    labels = ['com.docker.compose.project=korrigo', 'com.docker.compose.service=celery']
    container = client.containers.list(all=True, filters={'label': labels})[0]
    try:
        yield container
    finally:
        container.reload()
        if container.status != 'running':
            container.start()
        deadline = time.time() + 90
        while not run_module('celery_health', broker_url=BROKER)['healthy']:
            if time.time() > deadline:
                pytest.fail('the celery worker did not answer again within 90 s')
            time.sleep(1)
        client.close()


def health(check_mode=False, **args):
    return run_module('celery_health', check_mode=check_mode, diff=True, broker_url=BROKER, **dict(GUARD_DB, **args))


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
    # The worker's own broker is stated (worker_broker_url), but we listen on a database it does not use.
    result = run_module('celery_health', broker_url=SILENT_BROKER, worker_broker_url=BROKER, state='restarted',
                        compose_project='korrigo', wait_timeout=5, **GUARD_DB)
    assert result['failed'] and 'no Celery worker answered within 5s' in result['msg']
    assert result['service']['containers'][0]['status'] == 'running' and result['logs']


def test_bad_arguments(stack):
    assert 'needs compose_project' in run_module('celery_health', broker_url=BROKER, state='started')['msg']
    assert 'CELERY_BROKER_URL' in run_module('celery_health', broker_url='amqp://x')['msg']
    result = run_module('celery_health', broker_url=BROKER, state='restarted', restart_policy='always',
                        compose_project='no-such-project')
    assert 'manager=compose: no container' in result['msg']
    assert 'manager=systemd needs systemd_unit' in run_module('celery_health', broker_url=BROKER,
                                                              manager='systemd')['msg']


# --- workers anywhere: the broker to diagnose, the manager only to act --------------------------------------

@pytest.mark.parametrize('state', ['started', 'restarted'])
def test_answering_workers_are_diagnosed_without_docker(celery_container, state):
    """(a) manager=compose with no Docker daemon: the workers answer, so Docker is never contacted."""
    result = health(state=state, manager='compose', compose_project='korrigo', docker_host=NO_DOCKER)
    assert not result.get('failed'), result.get('msg')
    assert result['healthy'] and result['changed'] is False and result['action'] == 'none'
    assert result['manager'] == 'compose' and result['manual_action'] is None and 'service' not in result
    assert result['workers'][0]['name'].startswith('celery@') and result['queue_length'] is not None


def test_manager_none_then_unreachable_manager_with_the_worker_stopped(celery_container):
    """(b) manager=none returns the manual step and changes nothing; (c) manager=compose without a reachable
    Docker daemon fails naming the manager and the manual step, and changes nothing either."""
    celery_container.stop(timeout=10)
    result = health(state='restarted', manager='none', compose_project='korrigo')
    assert not result.get('failed') and result['changed'] is False and result['action'] == 'none'
    assert result['healthy'] is False and 'service' not in result
    assert result['manual_action'].startswith(
        'restart the Celery worker of broker redis://127.0.0.1:56379 db 0: no worker answers')
    celery_container.reload()
    assert celery_container.status == 'exited'

    result = health(state='restarted', manager='compose', compose_project='korrigo', docker_host=NO_DOCKER)
    assert result['failed'] and result['changed'] is False
    assert result['msg'].startswith('manager=compose: cannot reach the Docker daemon at %s' % NO_DOCKER)
    assert 'nothing was changed' in result['msg'] and 'Manual step: restart the Celery worker' in result['msg']
    assert result['manual_action'].startswith('restart the Celery worker')
    celery_container.reload()
    assert celery_container.status == 'exited'


def test_a_worker_of_another_broker_is_never_restarted(celery_container):
    """(d) the compose project is found, but its worker's CELERY_BROKER_URL is not the stated worker_broker_url."""
    started_at = celery_container.attrs['State']['StartedAt']
    for check_mode in (True, False):
        result = health(check_mode=check_mode, state='restarted', restart_policy='always', manager='compose',
                        compose_project='korrigo', worker_broker_url='redis://127.0.0.1:56379/7')
        assert result['failed'] and result['changed'] is False
        assert 'refusing to act on compose service korrigo/celery' in result['msg']
        assert "uses broker redis://127.0.0.1:56379 db 0 (environment CELERY_BROKER_URL), not " \
               "redis://127.0.0.1:56379 db 7" in result['msg']
        assert result['refused'] == [celery_container.name]
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at and celery_container.status == 'running'


def restart_audit(db):
    return db.query("SELECT a.resource_type, a.resource_id, a.metadata, u.username FROM core_auditlog a "
                    "LEFT JOIN auth_user u ON u.id = a.user_id WHERE a.action = 'korrigo_ops.celery_health.restart'")


def test_restart_confirms_identity_by_broker_and_node(celery_container, korrigo_head):
    """(e) the normal compose restart, with how the container was confirmed to be ours, and its one audit row."""
    korrigo_head.seed('baseline')
    started_at = celery_container.attrs['State']['StartedAt']
    dry = health(check_mode=True, state='restarted', restart_policy='always', manager='compose',
                 compose_project='korrigo')
    assert dry['action'] == 'restarted' and dry['audit_rows'] == 0 and restart_audit(korrigo_head) == []
    result = health(state='restarted', restart_policy='always', manager='compose', compose_project='korrigo')
    assert result['changed'] is True and result['healthy'] and result['action'] == 'restarted'
    assert result['audit_rows'] == 1 and result['audit_actions'] == ['korrigo_ops.celery_health.restart']
    rows = restart_audit(korrigo_head)
    assert [(r['resource_type'], r['resource_id'], r['username']) for r in rows] == \
        [('CeleryWorker', 'korrigo/celery', 'korrigo-ops')]
    meta = rows[0]['metadata']
    assert meta['remediation'] == 'celery_health' and meta['actor'] == 'korrigo-ops' and meta['manager'] == 'compose'
    assert meta['identity'][0]['name'] == celery_container.name and meta['before']['running'] is True
    assert meta['after'] == {'action': 'restarted'} and meta['run_by']['host']
    assert result['identity'][0]['name'] == celery_container.name
    assert 'environment CELERY_BROKER_URL' in result['identity'][0]['confirmed_by']
    assert 'answered' in result['identity'][0]['confirmed_by']  # its node name had answered through the broker
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] != started_at


def run_import_stuck(tmp_path, *extra, **env):
    environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'), **env)
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'recover_stuck_imports.yml'),
               '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', 'korrigo_report_dir=%s' % tmp_path,
               # Our own database (emptied), and no cleanup of the shared media root's temporary uploads.
               '-e', json.dumps({'korrigo_db_name': VERSIONS['head'], 'import_stuck_clean_temp_uploads': False,
                                 'import_stuck_drain_retries': 3, 'import_stuck_drain_delay': 1,
                                 'import_stuck_worker_wait_timeout': 10})] + list(extra)
    proc = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    report_path = tmp_path / 'import_stuck-korrigo-local.json'
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return proc, report


@pytest.fixture(name='workers_db')
def workers_db_fixture(request):
    """The role runs on the HEAD test database, emptied (the developer's own with KORRIGO_TEST_DB_SUFFIX)."""
    return request.getfixturevalue('korrigo_head')


def test_import_stuck_role_with_manager_none_diagnoses_without_docker(celery_container, workers_db, tmp_path):
    """The playbook from a controller without Docker: it diagnoses and reports, Docker is never contacted."""
    started_at = celery_container.attrs['State']['StartedAt']
    proc, report = run_import_stuck(tmp_path, '-e', 'korrigo_worker_manager=none', DOCKER_HOST=NO_DOCKER)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report['status'] == 'healthy' and report['done'] == []
    # (the shared media root may hold other tests' page directories, orphaned for our empty database)
    assert not any('worker' in line.lower() for line in report['needs_human'])
    assert report['found'][0].startswith('celery: 1 worker(s) answering')
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at


def test_import_stuck_role_reports_before_failing_on_an_unreachable_manager(celery_container, workers_db, tmp_path):
    """Worker down, Docker unreachable: the report (with the manual step) is out, then the play fails saying so."""
    celery_container.stop(timeout=10)
    proc, report = run_import_stuck(tmp_path, DOCKER_HOST=NO_DOCKER)
    if report and not report['found'][0].startswith('celery: 0 worker(s)'):
        pytest.skip('the shared worker was started again by someone else during the run')
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert 'manager=compose: cannot reach the Docker daemon' in proc.stdout
    # Appendix B, as triage reads it: the worker down is P1 with nothing waiting, P0 once copies or tasks wait.
    assert report is not None and report['severity'] == ('P1' if ', backlog 0,' in report['found'][0] else 'P0')
    assert report['status'] == 'failed: the worker was not brought back'
    assert any(line.startswith('restart the Celery worker of broker') for line in report['needs_human'])
    assert any('manager=compose: cannot reach the Docker daemon' in line for line in report['needs_human'])
    assert report['done'] == []
    celery_container.reload()
    assert celery_container.status == 'exited'

    # manager=none: the same run is not a failure, the restart is left to a human.
    proc, report = run_import_stuck(tmp_path, '-e', 'korrigo_worker_manager=none', DOCKER_HOST=NO_DOCKER)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert report['status'].startswith('needs a human')
    assert report['needs_human'][0].startswith('restart the Celery worker of broker redis://127.0.0.1:56379 db 0')
    celery_container.reload()
    assert celery_container.status == 'exited'


def test_a_restart_due_without_a_database_restarts_nothing(celery_container):
    """Diagnosis needs no database; acting does (advisory lock, audit row): unreachable, nothing is restarted."""
    started_at = celery_container.attrs['State']['StartedAt']
    no_db = dict(GUARD_DB, login_port=1, connect_timeout=2)
    diagnosis = run_module('celery_health', broker_url=BROKER, state='restarted', compose_project='korrigo', **no_db)
    assert not diagnosis.get('failed') and diagnosis['healthy'] and diagnosis['action'] == 'none'
    result = run_module('celery_health', broker_url=BROKER, state='restarted', restart_policy='always',
                        compose_project='korrigo', **no_db)
    assert result['failed'] and result['changed'] is False
    assert "a restart of the worker is due but its audit row and advisory lock need Korrigo's database" in result['msg']
    assert 'database server unreachable' in result['msg'] and 'nothing was changed' in result['msg']
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at and celery_container.status == 'running'


def test_a_concurrent_restart_is_skipped(celery_container, korrigo_head):
    import psycopg2
    from conftest import dsn_for
    korrigo_head.seed('baseline')
    started_at = celery_container.attrs['State']['StartedAt']
    holder = psycopg2.connect(dsn_for(korrigo_head.name))
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('korrigo.ops'), hashtext('celery_health'))")
        result = health(state='restarted', restart_policy='always', compose_project='korrigo')
        assert result.get('skipped_concurrent_run') is True and result['changed'] is False, result
    finally:
        holder.rollback()
        holder.close()
    celery_container.reload()
    assert celery_container.attrs['State']['StartedAt'] == started_at and restart_audit(korrigo_head) == []
