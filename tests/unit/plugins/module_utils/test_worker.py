"""worker.py: broker-URL comparison, node names, identity of compose containers and systemd units (fakes only)."""
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import worker
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError

OURS = 'redis://127.0.0.1:56379/0'
CELERY_CMD = ['celery', '-A', 'korrigo_stack.worker', 'worker', '-l', 'info', '-Q', 'celery']


@pytest.mark.parametrize('left,right', [
    ('redis://127.0.0.1:56379/0', 'redis://localhost:56379/0'),
    ('redis://127.0.0.1:56379/0', 'redis://[::1]:56379'),
    ('redis://:secret@127.0.0.1:56379/0', 'redis://127.0.0.1:56379/0?socket_timeout=3'),
    ('redis://user:pw@Redis.Example.org/0', 'redis://redis.example.org:6379'),
    ('redis://127.0.0.1:56379?db=2', 'redis://127.0.0.1:56379/2'),
    ('redis://198.51.100.9:6379/0;redis://127.0.0.1:56379/0', OURS),  # failover list: one of them
    ('unix:///run/redis.sock?db=1', 'redis+socket:///run/redis.sock?db=1'),
])
def test_same_broker(left, right):
    assert worker.same_broker(left, right)


@pytest.mark.parametrize('left,right', [
    ('redis://127.0.0.1:56379/1', OURS),  # another database of the same Redis
    ('redis://127.0.0.1:6379/0', OURS),  # another port
    ('redis://redis:6379/0', OURS),  # a compose service name is not our loopback
    ('rediss://127.0.0.1:56379/0', OURS),  # TLS is another listener
    ('amqp://guest@127.0.0.1:56379//', OURS),
    ('', OURS),
    ('redis://127.0.0.1:notaport/0', OURS),
])
def test_different_brokers(left, right):
    assert not worker.same_broker(left, right)


def test_redacted_url_has_no_credentials_and_is_not_the_url_itself():
    shown = worker.redact_url('redis://:s3cret@198.51.100.5:6380/2')
    assert shown == 'redis://198.51.100.5:6380 db 2' and 's3cret' not in shown
    assert 'redis://127.0.0.1:56379/0' not in worker.redact_url(OURS)  # would be masked by no_log


@pytest.mark.parametrize('argv,hostname,node', [
    (CELERY_CMD, 'vm', 'celery@vm'),
    (CELERY_CMD + ['-n', 'importer@%h'], 'web1.example.org', 'importer@web1.example.org'),
    (CELERY_CMD + ['--hostname=w1@%n'], 'web1.example.org', 'w1@web1'),
    (CELERY_CMD + ['-nw2@%d'], 'web1.example.org', 'w2@example.org'),
    (CELERY_CMD + ['--hostname', 'plain'], 'vm', 'celery@plain'),
    (['sh', '-c', 'celery -A core worker -n api@%h -b redis://x:1/0'], 'c0ffee', 'api@c0ffee'),
])
def test_node_names(argv, hostname, node):
    assert worker.worker_nodename(worker.flatten_argv(argv), hostname) == node


def test_broker_from_command_line_overrides_the_environment():
    env = {'CELERY_BROKER_URL': 'redis://a:1/0', 'BROKER_URL': 'redis://b:1/0'}
    assert worker.worker_broker(env, CELERY_CMD + ['--broker=redis://c:1/0']) == ('redis://c:1/0', 'command line')
    assert worker.worker_broker(env, CELERY_CMD) == ('redis://a:1/0', 'environment CELERY_BROKER_URL')
    assert worker.worker_broker({'BROKER_URL': 'redis://b:1/0'}, CELERY_CMD)[1] == 'environment BROKER_URL'
    assert worker.worker_broker({}, CELERY_CMD) == (None, None)


class TestConfirmWorker(object):
    def test_same_url_with_host_networking(self):
        ok, how = worker.confirm_worker('c', {'CELERY_BROKER_URL': OURS}, CELERY_CMD, 'vm', OURS)
        assert ok and 'environment CELERY_BROKER_URL' in how

    def test_another_broker_is_refused_even_when_its_node_name_answered(self):
        ok, why = worker.confirm_worker('container x', {'CELERY_BROKER_URL': 'redis://127.0.0.1:56379/3'},
                                        CELERY_CMD, 'vm', OURS, answering=['celery@vm'])
        assert not ok and "another deployment's worker" in why and 'db 3' in why

    def test_loopback_in_its_own_network_namespace_is_not_ours_by_default(self):
        ok, why = worker.confirm_worker('container x', {'CELERY_BROKER_URL': OURS}, CELERY_CMD, 'c0ffee', OURS,
                                        shares_network=False)
        assert not ok and 'own network namespace' in why and 'worker_broker_url' in why

    def test_loopback_in_its_own_namespace_is_accepted_when_stated_or_when_its_node_answered(self):
        env = {'CELERY_BROKER_URL': OURS}
        assert worker.confirm_worker('c', env, CELERY_CMD, 'c0ffee', OURS, explicit=True, shares_network=False)[0]
        assert worker.confirm_worker('c', env, CELERY_CMD, 'c0ffee', OURS, answering=['celery@c0ffee'],
                                     shares_network=False)[0]

    def test_compose_service_name_stated_as_worker_broker_url(self):
        env = {'CELERY_BROKER_URL': 'redis://redis:6379/0'}
        assert not worker.confirm_worker('c', env, CELERY_CMD, 'c0ffee', OURS, shares_network=False)[0]
        assert worker.confirm_worker('c', env, CELERY_CMD, 'c0ffee', 'redis://redis:6379/0', explicit=True,
                                     shares_network=False)[0]

    def test_no_url_needs_an_answering_node(self):
        ok, why = worker.confirm_worker('unit u', {}, CELERY_CMD, 'vm', OURS)
        assert not ok and 'cannot confirm' in why
        ok, how = worker.confirm_worker('unit u', {}, CELERY_CMD, 'vm', OURS, answering=['celery@vm'])
        assert ok and 'answered' in how


def test_docker_daemon_locality():
    assert worker.docker_daemon_is_local(None, environ={})
    assert worker.docker_daemon_is_local('unix:///var/run/docker.sock', environ={})
    assert worker.docker_daemon_is_local('tcp://127.0.0.1:2375', environ={})
    assert not worker.docker_daemon_is_local('tcp://docker.example.org:2376', environ={})
    assert not worker.docker_daemon_is_local(None, environ={'DOCKER_HOST': 'ssh://admin@other'})


# --- compose, with a fake Docker client ---------------------------------------------------------------------

class FakeContainer(object):
    def __init__(self, name, env, network='host', hostname='vm', status='running', cmd=None):
        self.name = name
        self.short_id = name[:12]
        self.status = status
        self.attrs = {'Config': {'Env': ['%s=%s' % item for item in env.items()], 'Hostname': hostname,
                                 'Entrypoint': ['/usr/bin/tini', '--'], 'Cmd': cmd or CELERY_CMD},
                      'HostConfig': {'NetworkMode': network}}
        self.calls = []

    def restart(self, timeout=10):
        self.calls.append('restart')

    def start(self):
        self.calls.append('start')

    def logs(self, tail=15):
        return b'worker: Ready'


class FakeClient(object):
    def __init__(self, containers):
        self._containers = containers
        self.containers = self
        self.filters = None

    def list(self, all=False, filters=None):  # noqa: A002 - the SDK's name
        self.filters = filters
        return list(self._containers)

    def close(self):
        pass


def compose(*containers):
    return worker.ComposeWorkers('korrigo', 'celery', docker_host='unix:///var/run/docker.sock',
                                 client=FakeClient(containers))


def test_compose_finds_containers_by_labels_and_confirms_ours():
    ours = FakeContainer('korrigo_celery_1', {'CELERY_BROKER_URL': OURS})
    workers = compose(ours)
    assert workers.describe()['containers'] == [{'name': 'korrigo_celery_1', 'id': 'korrigo_cele', 'status': 'running'}]
    assert workers.client.filters == {'label': ['com.docker.compose.project=korrigo',
                                                'com.docker.compose.service=celery']}
    assert workers.confirm(OURS) == [('korrigo_celery_1', 'broker redis://127.0.0.1:56379 db 0 '
                                                          '(environment CELERY_BROKER_URL)')]
    workers.act('restarted')
    assert ours.calls == ['restart']


def test_compose_refuses_a_same_named_project_of_another_broker_and_touches_nothing():
    other = FakeContainer('korrigo_celery_1', {'CELERY_BROKER_URL': 'redis://127.0.0.1:6379/0'})
    with pytest.raises(worker.NotOurWorker, match='refusing to act on compose service korrigo/celery') as err:
        compose(other).confirm(OURS, answering=['celery@vm'])
    assert err.value.details['refused'] == ['korrigo_celery_1'] and other.calls == []


def test_compose_refuses_when_one_of_the_containers_is_not_ours():
    ours = FakeContainer('korrigo_celery_1', {'CELERY_BROKER_URL': OURS})
    other = FakeContainer('korrigo_celery_2', {'CELERY_BROKER_URL': 'redis://127.0.0.1:56379/4'})
    with pytest.raises(worker.NotOurWorker, match='korrigo_celery_2'):
        compose(ours, other).confirm(OURS)


def test_compose_bridge_network_with_loopback_url_is_refused_unless_stated():
    bridged = FakeContainer('korrigo_celery_1', {'CELERY_BROKER_URL': OURS}, network='korrigo_default',
                            hostname='c0ffee')
    with pytest.raises(worker.NotOurWorker, match='own network namespace'):
        compose(bridged).confirm(OURS)
    assert compose(bridged).confirm(OURS, explicit=True)


def test_compose_no_container_is_an_error():
    with pytest.raises(KorrigoError, match='no container of compose service korrigo/celery'):
        compose().describe()


def test_docker_sdk_missing_or_daemon_unreachable_is_manager_unavailable(monkeypatch):
    monkeypatch.setattr(worker, 'HAS_DOCKER', False)
    with pytest.raises(worker.ManagerUnavailable, match='Docker SDK'):
        worker.docker_client()


# --- systemd, with a fake systemctl ---------------------------------------------------------------------------

SHOW = (
    'LoadState=loaded\n'
    'ActiveState=failed\n'
    'SubState=failed\n'
    'Environment=DJANGO_SETTINGS_MODULE=core.settings "CELERY_BROKER_URL=redis://:pw@127.0.0.1:56379/0"\n'
    'EnvironmentFiles=%s (ignore_errors=yes)\n'
    'ExecStart={ path=/opt/korrigo/venv/bin/celery ; argv[]=/opt/korrigo/venv/bin/celery -A core worker '
    '-n korrigo@%%%%h -l info ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; '
    'status=0/0 }\n'
)


class FakeSystemctl(object):
    def __init__(self, show, rc=0):
        self.show = show
        self.rc = rc
        self.commands = []

    def __call__(self, command):
        self.commands.append(command)
        if command[1] == 'show':
            return self.rc, self.show, ''
        return 0, '', ''


def systemd(show, tmp_path=None, rc=0):
    run = FakeSystemctl(show, rc)
    unit = worker.SystemdWorker('korrigo-celery.service', run, lambda name: '/usr/bin/' + name, hostname='web1')
    return unit, run


def test_systemd_reads_environment_and_exec_start(tmp_path):
    unit, run = systemd(SHOW % (tmp_path / 'absent'))
    assert unit.describe() == {'kind': 'systemd', 'unit': 'korrigo-celery.service', 'active': False,
                               'active_state': 'failed', 'sub_state': 'failed'}
    assert unit.confirm(OURS) == [('korrigo-celery.service',
                                   'broker redis://127.0.0.1:56379 db 0 (environment CELERY_BROKER_URL)')]
    unit.act('restarted')
    assert run.commands[-1] == ['/usr/bin/systemctl', 'restart', 'korrigo-celery.service']


def test_systemd_environment_file_overrides_and_can_refuse(tmp_path):
    envfile = tmp_path / 'korrigo.env'
    envfile.write_text('# korrigo\nexport CELERY_BROKER_URL="redis://198.51.100.3:6379/0"\n')
    unit, run = systemd(SHOW % envfile)
    with pytest.raises(worker.NotOurWorker, match='redis://198.51.100.3:6379 db 0'):
        unit.confirm(OURS, answering=['korrigo@web1'])
    assert not any(command[1] in ('start', 'restart') for command in run.commands)


def test_systemd_without_broker_url_is_confirmed_by_its_node_name(tmp_path):
    show = '\n'.join(line for line in (SHOW % (tmp_path / 'absent')).splitlines() if not line.startswith('Environment'))
    unit, _run = systemd(show)
    with pytest.raises(worker.NotOurWorker, match='cannot confirm'):
        unit.confirm(OURS, answering=['celery@web1'])
    assert 'node korrigo@web1 answered' in unit.confirm(OURS, answering=['korrigo@web1'])[0][1]


def test_systemd_unknown_unit_or_missing_systemctl_is_manager_unavailable():
    unit, _run = systemd('LoadState=not-found\nActiveState=inactive\n')
    with pytest.raises(worker.ManagerUnavailable, match='unknown'):
        unit.describe()
    with pytest.raises(worker.ManagerUnavailable, match='systemctl is not available'):
        worker.SystemdWorker('x.service', None, lambda name: None)


def test_worker_manager_none_never_builds_a_manager():
    with pytest.raises(KorrigoError, match='does not act'):
        worker.worker_manager('none', {})
