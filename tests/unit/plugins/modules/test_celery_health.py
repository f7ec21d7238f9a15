"""celery_health's decisions with fakes: diagnosis needs only the broker, manager none, manager failures, identity."""
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import worker
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.modules import celery_health

BROKER = 'redis://127.0.0.1:56379/0'
PONG = [{'name': 'celery@vm', 'ok': True, 'active': 0, 'reserved': 0, 'active_tasks': []}]


class FakeModule(object):
    def __init__(self, check_mode=False, **params):
        self.params = dict(broker_url=BROKER, worker_broker_url=None, queue='celery', state=None,
                           restart_policy='if_unhealthy', manager=None, compose_project=None,
                           compose_service='celery', systemd_unit=None, docker_host=None, ping_timeout=0.1,
                           wait_timeout=0)
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True

    def run_command(self, command):
        raise AssertionError('no command expected: %r' % (command,))

    def get_bin_path(self, name):
        return None


class FakeService(object):
    """A manager whose worker comes back once acted on."""

    def __init__(self, running=False, refuse=None, answers=None):
        self.is_running = running
        self.refuse = refuse
        self.acted = []
        self.answers = answers

    def describe(self):
        return {'kind': 'compose', 'containers': [{'name': 'korrigo_celery_1', 'status':
                                                   'running' if self.is_running else 'exited'}]}

    @staticmethod
    def running(description):
        return description['containers'][0]['status'] == 'running'

    def confirm(self, url, explicit=False, answering=()):
        if self.refuse:
            raise worker.NotOurWorker(self.refuse)
        return [('korrigo_celery_1', 'broker %s' % worker.redact_url(url))]

    def act(self, action):
        self.acted.append(action)
        self.is_running = True
        if self.answers is not None:
            self.answers[:] = PONG

    def logs(self):
        return []

    def close(self):
        pass


@pytest.fixture(name='broker')
def broker_fixture(monkeypatch):
    """The broker answers; `answers` is the list of workers that answer the ping (mutable)."""
    answers = []
    monkeypatch.setattr(celery_health, 'broker_state', lambda url, queue: (True, None, 3))
    monkeypatch.setattr(celery_health, 'inspect_workers', lambda url, timeout: list(answers))
    monkeypatch.setattr(celery_health.time, 'sleep', lambda seconds: None)
    return answers


@pytest.fixture(name='no_manager')
def no_manager_fixture(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('the manager must not be contacted')
    monkeypatch.setattr(celery_health, 'worker_manager', refuse)


def use(monkeypatch, service):
    monkeypatch.setattr(celery_health, 'worker_manager', lambda manager, params, run, which: service)
    return service


@pytest.mark.parametrize('state,policy,healthy,needed', [
    (None, 'always', False, False),
    ('started', 'if_unhealthy', True, False),
    ('started', 'always', True, False),
    ('started', 'if_unhealthy', False, True),
    ('restarted', 'if_unhealthy', True, False),
    ('restarted', 'if_unhealthy', False, True),
    ('restarted', 'always', True, True),
])
def test_manager_is_needed_only_to_act(state, policy, healthy, needed):
    assert celery_health.must_contact_manager(state, policy, healthy) is needed


@pytest.mark.parametrize('params,manager', [
    ({}, None),
    ({'compose_project': 'korrigo'}, 'compose'),
    ({'systemd_unit': 'celery.service'}, 'systemd'),
    ({'manager': 'none', 'state': 'restarted'}, 'none'),
    ({'manager': 'compose', 'compose_project': 'korrigo', 'systemd_unit': 'x.service'}, 'compose'),
])
def test_effective_manager(params, manager):
    assert celery_health.effective_manager(params) == manager


@pytest.mark.parametrize('params,message', [
    ({'state': 'started'}, 'needs compose_project'),
    ({'manager': 'compose'}, 'manager=compose needs compose_project'),
    ({'manager': 'systemd', 'state': 'restarted'}, 'manager=systemd needs systemd_unit'),
    ({'compose_project': 'k', 'systemd_unit': 'u'}, 'not both'),
])
def test_effective_manager_refuses(params, message):
    with pytest.raises(KorrigoError, match=message):
        celery_health.effective_manager(params)


@pytest.mark.parametrize('state', ['started', 'restarted'])
def test_answering_workers_are_diagnosed_without_the_manager(broker, no_manager, state):
    broker[:] = PONG
    result = celery_health.health(FakeModule(state=state, manager='compose', compose_project='korrigo',
                                             docker_host='unix:///nonexistent.sock'))
    assert result['healthy'] and result['changed'] is False and result['action'] == 'none'
    assert result['manual_action'] is None and 'service' not in result and result['queue_length'] == 3


@pytest.mark.parametrize('check_mode', [False, True])
def test_manager_none_returns_the_manual_step_and_changes_nothing(broker, no_manager, check_mode):
    result = celery_health.health(FakeModule(check_mode, state='restarted', manager='none',
                                             compose_project='korrigo'))
    assert result['changed'] is False and result['action'] == 'none' and not result['healthy']
    assert result['manual_action'].startswith(
        'restart the Celery worker of broker redis://127.0.0.1:56379 db 0: no worker answers')
    assert 'docker compose -p korrigo restart celery' in result['manual_action']


def test_manager_none_with_restart_policy_always_says_why(broker, no_manager):
    broker[:] = PONG
    result = celery_health.health(FakeModule(state='restarted', restart_policy='always', manager='none',
                                             systemd_unit='korrigo-celery.service'))
    assert result['changed'] is False and result['healthy']
    assert result['manual_action'].endswith('restart_policy=always asks for a restart '
                                            '(systemctl restart korrigo-celery.service)')


def test_manager_none_start(broker, no_manager):
    result = celery_health.health(FakeModule(state='started', manager='none'))
    assert result['manual_action'] == 'start the Celery worker of broker redis://127.0.0.1:56379 db 0: no worker answers'


def test_unreachable_manager_fails_naming_it_and_the_manual_step(broker, monkeypatch):
    def unreachable(manager, params, run, which):
        raise worker.ManagerUnavailable('cannot reach the Docker daemon at unix:///nonexistent.sock: refused')
    monkeypatch.setattr(celery_health, 'worker_manager', unreachable)
    with pytest.raises(KorrigoError) as err:
        celery_health.health(FakeModule(state='restarted', manager='compose', compose_project='korrigo',
                                        docker_host='unix:///nonexistent.sock'))
    assert err.value.msg.startswith('manager=compose: cannot reach the Docker daemon')
    assert 'nothing was changed' in err.value.msg and 'Manual step: restart the Celery worker' in err.value.msg
    assert err.value.details['manual_action'].startswith('restart the Celery worker')
    assert err.value.details['changed'] is False and err.value.details['queue_length'] == 3


def test_systemd_unknown_unit_fails_before_acting(broker):
    module = FakeModule(state='restarted', manager='systemd', systemd_unit='nope.service')
    module.get_bin_path = lambda name: '/usr/bin/' + name
    module.run_command = lambda command: (0, 'LoadState=not-found\n', '')
    with pytest.raises(KorrigoError, match='manager=systemd: systemd unit nope.service is unknown'):
        celery_health.health(module)


def test_identity_refusal_acts_on_nothing(broker, monkeypatch):
    service = use(monkeypatch, FakeService(refuse='refusing to act on compose service korrigo/celery: another'))
    with pytest.raises(KorrigoError, match='manager=compose: refusing to act') as err:
        celery_health.health(FakeModule(state='restarted', compose_project='korrigo'))
    assert service.acted == [] and err.value.details['service']['containers'][0]['status'] == 'exited'


def test_a_stopped_worker_is_started_and_waited_for(broker, monkeypatch):
    service = use(monkeypatch, FakeService(answers=broker))
    result = celery_health.health(FakeModule(state='started', compose_project='korrigo', wait_timeout=5))
    assert service.acted == ['started'] and result['changed'] and result['healthy']
    assert result['identity'] == [{'name': 'korrigo_celery_1', 'confirmed_by': 'broker redis://127.0.0.1:56379 db 0'}]
    assert result['diff'] == {'before': {'running': False, 'workers_answering': 0},
                              'after': {'running': True, 'workers_answering': 1, 'action': 'started'}}


def test_check_mode_confirms_but_does_not_act(broker, monkeypatch):
    service = use(monkeypatch, FakeService())
    result = celery_health.health(FakeModule(True, state='restarted', compose_project='korrigo'))
    assert result['changed'] and result['action'] == 'restarted' and service.acted == []
    assert result['identity'] and result['waited_seconds'] == 0.0


def test_worker_broker_url_is_what_identity_compares(broker, monkeypatch):
    seen = {}

    class Recording(FakeService):
        def confirm(self, url, explicit=False, answering=()):
            seen.update(url=url, explicit=explicit, answering=list(answering))
            return FakeService.confirm(self, url, explicit, answering)
    use(monkeypatch, Recording(answers=broker))
    broker[:] = PONG
    celery_health.health(FakeModule(state='restarted', restart_policy='always', compose_project='korrigo',
                                    worker_broker_url='redis://redis:6379/0', wait_timeout=5))
    assert seen == {'url': 'redis://redis:6379/0', 'explicit': True, 'answering': ['celery@vm']}
    celery_health.health(FakeModule(state='restarted', restart_policy='always', compose_project='korrigo',
                                    wait_timeout=5))
    assert seen['url'] == BROKER and seen['explicit'] is False


def test_broker_down_acts_on_nothing_and_contacts_no_manager(monkeypatch, no_manager):
    monkeypatch.setattr(celery_health, 'broker_state', lambda url, queue: (False, 'Celery broker unreachable', None))
    with pytest.raises(KorrigoError, match='nothing was started or restarted'):
        celery_health.health(FakeModule(state='restarted', compose_project='korrigo'))
    result = celery_health.health(FakeModule())
    assert result['broker'] == {'reachable': False, 'error': 'Celery broker unreachable'} and not result['healthy']


def test_broker_urls_are_no_log():
    import inspect
    source = inspect.getsource(celery_health.main)
    assert "broker_url=dict(type='str', required=True, no_log=True)" in source
    assert "worker_broker_url=dict(type='str', no_log=True)" in source


@pytest.mark.parametrize('state,policy,healthy,running,action', [
    (None, 'if_unhealthy', False, False, 'none'),
    ('started', 'if_unhealthy', False, False, 'started'),
    ('started', 'if_unhealthy', False, True, 'none'),
    ('started', 'always', True, True, 'none'),
    ('restarted', 'if_unhealthy', True, True, 'none'),
    ('restarted', 'if_unhealthy', False, True, 'restarted'),
    ('restarted', 'if_unhealthy', False, False, 'restarted'),
    ('restarted', 'always', True, True, 'restarted'),
])
def test_worker_action(state, policy, healthy, running, action):
    assert celery_health.decide(state, policy, healthy, running) == action


class FakeGuard(object):
    """side_effects.SideEffects without a database: plans, performs (not in check mode) and records."""
    opened = []

    def __init__(self, params, name, check_mode, **kwargs):
        self.name, self.check_mode, self.planned, self.records = name, check_mode, None, []
        FakeGuard.opened.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def plan(self, count):
        self.planned = count

    def perform(self, action, resource_type, resource_id, effect, before=None, metadata=None):
        assert self.planned is not None and len(self.records) < self.planned
        if not self.check_mode:
            effect()
        self.records.append((action, resource_type, resource_id))
        return self.records[-1]

    def result(self):
        return {'audit_rows': 0 if self.check_mode else len(self.records),
                'audit_actions': sorted(set(r[0] for r in self.records))}


@pytest.fixture(autouse=True)
def fake_guard(monkeypatch):
    """The start/restart guard (advisory lock, actor, audit row) is tested against PostgreSQL in integration."""
    FakeGuard.opened = []
    monkeypatch.setattr(celery_health, 'SideEffects', FakeGuard)
    return FakeGuard


def test_a_start_is_guarded_and_recorded(broker, monkeypatch):
    use(monkeypatch, FakeService(answers=broker))
    result = celery_health.health(FakeModule(state='started', compose_project='korrigo', wait_timeout=5))
    assert result['audit_rows'] == 1 and result['audit_actions'] == ['korrigo_ops.celery_health.start']
    assert FakeGuard.opened[0].records == [('korrigo_ops.celery_health.start', 'CeleryWorker', 'korrigo/celery')]


def test_diagnosis_opens_no_guard(broker, no_manager):
    broker[:] = PONG
    result = celery_health.health(FakeModule(state='restarted', compose_project='korrigo'))
    assert result['audit_rows'] == 0 and FakeGuard.opened == []
