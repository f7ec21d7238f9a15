# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Korrigo's Celery worker as something to act on: its compose containers or its systemd unit.

Diagnosis never comes here (it only needs the broker, see celery_health); this is contacted only when a worker
must be started or restarted. Before acting, the worker is confirmed to be the worker of *this* broker:

* its broker URL is read from the command line (``-b``/``--broker``) or its environment (``CELERY_BROKER_URL``,
  then ``BROKER_URL``): a container's ``Config.Env``, a unit's ``Environment=`` and ``EnvironmentFile=``;
* it must equal ``worker_broker_url`` (the URL as the worker sees it) once normalised: scheme (``redis`` and
  ``rediss`` differ), host (lower case; ``localhost``, ``127.0.0.0/8`` and ``::1`` are one loopback), port
  (default 6379), database (path or ``?db=``, default 0); credentials and other options are ignored. A URL
  list (``a;b``, failover) matches when one of its URLs does;
* a loopback URL only names the module host's Redis when the worker shares the module host's network: a
  systemd unit does, a container does with ``network_mode: host`` on a local Docker daemon. Otherwise (a
  container with its own network namespace, a remote daemon) the loopback match counts only when the user
  stated ``worker_broker_url`` explicitly, or when the worker's node name answered through our broker;
* a worker whose URL differs is refused, whatever its name; a worker whose URL cannot be read is accepted only
  when its Celery node name (``-n``/``--hostname``, default ``celery@%h``) is one of the nodes that answered
  through our broker.

The Docker client (SDK) lives here too, for media.py's discovery of the media root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import shlex
import socket
import traceback

from ansible_collections.korrigo.ops.plugins.module_utils.compose import daemon_url, service_labels
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

try:
    from urllib.parse import urlsplit, parse_qs
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection, kept for sanity tests
    from urlparse import urlsplit, parse_qs  # type: ignore

DOCKER_IMPORT_ERROR = None
try:
    import docker
    HAS_DOCKER = True
except ImportError:
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

MANAGERS = ('compose', 'systemd', 'none')
DEFAULT_REDIS_PORT = 6379
BROKER_ENV_NAMES = ('CELERY_BROKER_URL', 'BROKER_URL')


class ManagerUnavailable(KorrigoError):
    """The worker's manager (Docker daemon, systemd) cannot be used from here."""


class NotOurWorker(KorrigoError):
    """The container or unit is not (or cannot be confirmed to be) the worker of this broker."""


# --- Docker -------------------------------------------------------------------------------------------------

def docker_client(docker_host=None):
    """A connected Docker client, or ManagerUnavailable (SDK missing, daemon unreachable)."""
    if not HAS_DOCKER:
        raise ManagerUnavailable("the docker Python library (Docker SDK) is required on the host running this "
                                 "module (pip install docker)", exception=DOCKER_IMPORT_ERROR)
    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        client.ping()
    except Exception as err:  # docker.errors.DockerException and transport errors
        raise ManagerUnavailable("cannot reach the Docker daemon%s: %s"
                                 % (' at %s' % docker_host if docker_host else '', err))
    return client


def service_containers(client, project, service):
    """Containers of a compose service, running or not, found by the labels both Compose versions set."""
    labels = service_labels(project, service)
    try:
        return sorted(client.containers.list(all=True, filters={'label': labels}), key=lambda c: c.name)
    except Exception as err:
        raise KorrigoError("listing the containers of %s/%s failed: %s" % (project, service, err))


def docker_daemon_is_local(docker_host=None, environ=None):
    """True when the Docker daemon runs on the module host (unix socket, npipe, or TCP to loopback)."""
    environ = os.environ if environ is None else environ
    url = daemon_url(docker_host, environ)
    if url.startswith(('unix://', 'npipe://')):
        return True
    if url.startswith(('tcp://', 'http://', 'https://')):
        return is_loopback(urlsplit(url.replace('tcp://', 'http://', 1)).hostname)
    return False  # ssh:// and anything else: another host


# --- broker URLs --------------------------------------------------------------------------------------------

def is_loopback(host):
    if not host:
        return False
    host = host.strip('[]').lower()
    if host in ('localhost', 'localhost.localdomain', 'ip6-localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_broker_url(url):
    """Normalised identity of one Redis broker URL: dict(scheme, host, port, db) (``path`` for unix sockets).

    Credentials and options other than ``db`` are dropped. None when the URL is not a Redis URL."""
    if not url:
        return None
    url = str(url).strip()
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in ('redis+socket', 'socket'):
            scheme = 'unix'
        if scheme == 'unix':
            db = (parse_qs(parts.query).get('db') or ['0'])[0]
            return {'scheme': 'unix', 'path': os.path.normpath(parts.path), 'db': int(db)}
        if scheme not in ('redis', 'rediss'):
            return None
        host = (parts.hostname or 'localhost').lower()
        port = parts.port or DEFAULT_REDIS_PORT
        db = parts.path.strip('/') or (parse_qs(parts.query).get('db') or ['0'])[0]
        db = int(db)
    except ValueError:
        return None
    return {'scheme': scheme, 'host': 'loopback' if is_loopback(host) else host, 'port': port, 'db': db}


def split_broker_urls(value):
    """Celery accepts a ``;``-separated list of broker URLs (failover)."""
    return [part.strip() for part in str(value or '').split(';') if part.strip()]


def same_broker(left, right):
    """True when two broker URLs (or URL lists) designate the same Redis database."""
    wanted = [parse_broker_url(url) for url in split_broker_urls(right)]
    for url in split_broker_urls(left):
        parsed = parse_broker_url(url)
        if parsed is not None and parsed in wanted:
            return True
    return False


def redact_url(url):
    """A broker URL without credentials, to show in messages and results: ``redis://host:port db N``.

    Deliberately not the URL itself: broker_url is no_log, and Ansible masks every string containing it."""
    shown = []
    for one in split_broker_urls(url):
        try:
            parts = urlsplit(one)
            netloc = parts.netloc.rsplit('@', 1)[-1]
            db = parts.path.strip('/') if parts.scheme != 'unix' else ''
            db = db or (parse_qs(parts.query).get('db') or ['0'])[0]
            where = parts.path if parts.scheme == 'unix' else ''
            shown.append('%s://%s%s db %s' % (parts.scheme, netloc, where, db))
        except ValueError:
            shown.append('<unparsable URL>')
    return '; '.join(shown) or '<none>'


def broker_is_loopback(url):
    return any((parse_broker_url(one) or {}).get('host') == 'loopback' for one in split_broker_urls(url))


# --- what a worker process says about itself ----------------------------------------------------------------

def env_dict(assignments):
    """``['K=V', ...]`` (Docker Config.Env, systemd Environment=) as a dict."""
    env = {}
    for item in assignments or []:
        if '=' in item:
            key, value = item.split('=', 1)
            env[key.strip()] = value
    return env


def _option(argv, short, long_):
    """Value of ``-x V``, ``-xV``, ``--long V`` or ``--long=V`` (last one wins, as argparse/click do)."""
    value = None
    for index, arg in enumerate(argv):
        if arg in (short, long_) and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(long_ + '='):
            value = arg[len(long_) + 1:]
        elif short and arg.startswith(short) and len(arg) > len(short) and not arg.startswith('--'):
            value = arg[len(short):]
    return value


def flatten_argv(argv):
    """argv with shell strings (``sh -c "celery -A core worker -b ..."``) split into words."""
    words = []
    for arg in argv or []:
        arg = str(arg)
        if ' ' in arg.strip():
            try:
                words.extend(shlex.split(arg))
            except ValueError:
                words.extend(arg.split())
        else:
            words.append(arg)
    return words


def expand_nodename(name, hostname):
    """Celery's node name expansion: ``%h`` host name, ``%n`` its first label, ``%d`` the domain, ``%%``."""
    if '@' not in name:
        name = 'celery@' + name
    short, _dot, domain = hostname.partition('.')
    out, index = [], 0
    while index < len(name):
        char = name[index]
        if char == '%' and index + 1 < len(name):
            nxt = name[index + 1]
            out.append({'h': hostname, 'n': short, 'd': domain, '%': '%'}.get(nxt, char + nxt))
            index += 2
            continue
        out.append(char)
        index += 1
    return ''.join(out)


def worker_nodename(argv, hostname):
    """The node name a Celery worker started with ``argv`` on ``hostname`` announces."""
    given = _option(argv, '-n', '--hostname')
    return expand_nodename(given or 'celery@%h', hostname)


def worker_broker(env, argv):
    """(broker URL, where it was found) of a worker: command line first (it overrides), then environment."""
    given = _option(argv, '-b', '--broker')
    if given:
        return given, 'command line'
    for name in BROKER_ENV_NAMES:
        if env.get(name):
            return env[name], 'environment %s' % name
    return None, None


def confirm_worker(label, env, argv, hostname, worker_url, explicit=False, answering=(), shares_network=True):
    """Whether a container or unit is the worker of our broker: (True, how) or (False, why not).

    ``worker_url`` is the broker URL as the worker sees it; ``explicit`` says the user stated it (otherwise it
    is the module's own broker_url); ``answering`` the node names that answered through our broker;
    ``shares_network`` whether the worker's loopback is the module host's (see the module docstring)."""
    argv = flatten_argv(argv)
    node = worker_nodename(argv, hostname) if hostname else None
    node_answered = node is not None and node in set(answering or ())
    url, source = worker_broker(env or {}, argv)
    if url:
        if not same_broker(url, worker_url):
            return False, ("%s uses broker %s (%s), not %s: it is another deployment's worker"
                           % (label, redact_url(url), source, redact_url(worker_url)))
        if broker_is_loopback(worker_url) and not shares_network and not explicit and not node_answered:
            return False, ("%s uses broker %s (%s) but has its own network namespace, so its loopback is not this "
                           "host's: set worker_broker_url to the URL as the worker sees it if it is ours"
                           % (label, redact_url(url), source))
        return True, "broker %s (%s)%s" % (redact_url(url), source, ', node %s answered' % node if node_answered else '')
    if node_answered:
        return True, "node %s answered through this broker (no broker URL in its environment)" % node
    return False, ("%s names no broker (no -b/--broker, no %s in its environment) and its node %s did not answer "
                   "through %s: cannot confirm it is this Korrigo's worker"
                   % (label, ' or '.join(BROKER_ENV_NAMES), node or '?', redact_url(worker_url)))


# --- the managers -------------------------------------------------------------------------------------------

class ComposeWorkers(object):
    """The containers of the worker's compose service, found by their labels on the Docker daemon."""

    kind = 'compose'

    def __init__(self, project, service='celery', docker_host=None, client=None):
        self.project = project
        self.service = service
        self.docker_host = docker_host
        self.client = client if client is not None else docker_client(docker_host)

    def label(self):
        return 'compose service %s/%s' % (self.project, self.service)

    def containers(self):
        containers = service_containers(self.client, self.project, self.service)
        if not containers:
            raise KorrigoError("no container of compose service %s/%s (labels com.docker.compose.project=%s, "
                               "com.docker.compose.service=%s): create it with docker-compose up first"
                               % (self.project, self.service, self.project, self.service))
        return containers

    def describe(self):
        return {'kind': 'compose', 'project': self.project, 'service': self.service,
                'containers': [{'name': c.name, 'id': c.short_id, 'status': c.status} for c in self.containers()]}

    @staticmethod
    def running(description):
        return any(c['status'] == 'running' for c in description['containers'])

    def confirm(self, worker_url, explicit=False, answering=()):
        """[(container name, how confirmed)] or NotOurWorker naming every container refused."""
        local = docker_daemon_is_local(self.docker_host)
        confirmed, refused = [], []
        for container in self.containers():
            attrs = container.attrs or {}
            config = attrs.get('Config') or {}
            argv = list(config.get('Entrypoint') or []) + list(config.get('Cmd') or [])
            network = (attrs.get('HostConfig') or {}).get('NetworkMode') or ''
            ok, how = confirm_worker('container %s' % container.name, env_dict(config.get('Env')), argv,
                                     config.get('Hostname') or '', worker_url, explicit, answering,
                                     shares_network=(network == 'host' and local))
            (confirmed if ok else refused).append((container.name, how))
        if refused:
            raise NotOurWorker("refusing to act on %s: %s" % (self.label(), '; '.join(how for _n, how in refused)),
                               refused=[name for name, _how in refused])
        return confirmed

    def act(self, action):
        for container in self.containers():
            try:
                if action == 'restarted':
                    container.restart(timeout=10)
                elif container.status != 'running':
                    container.start()
            except Exception as err:
                raise KorrigoError("could not %s container %s: %s"
                                   % ('restart' if action == 'restarted' else 'start', container.name, err))

    def logs(self, lines=15):
        tail = []
        for container in self.containers():
            try:
                text = container.logs(tail=lines).decode('utf-8', 'replace')
            except Exception:  # logs are a courtesy in an error message
                continue
            tail.extend('%s: %s' % (container.name, line) for line in text.strip().splitlines())
        return tail[-lines:]

    def close(self):
        if self.client is not None:
            self.client.close()


def parse_systemctl_show(text):
    """``systemctl show`` output as {property: [values]} (some properties, EnvironmentFiles, repeat)."""
    props = {}
    for line in (text or '').splitlines():
        if '=' in line:
            key, value = line.split('=', 1)
            props.setdefault(key, []).append(value)
    return props


def exec_start_argv(value):
    """argv of ``ExecStart={ path=... ; argv[]=/usr/bin/celery -A x worker ; ignore_errors=no ; ... }``."""
    if 'argv[]=' in value:
        value = value.split('argv[]=', 1)[1].split(' ; ', 1)[0]
    value = value.strip().strip('{}').strip()
    try:
        return shlex.split(value.replace('%%', '%'))
    except ValueError:
        return value.split()


def read_environment_file(path):
    """KEY=VALUE lines of a systemd EnvironmentFile (comments, ``export`` and quotes handled); {} if unreadable."""
    env = {}
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except (IOError, OSError):
        return env
    for line in lines:
        line = line.strip()
        if not line or line.startswith(('#', ';')) or '=' not in line:
            continue
        if line.startswith('export '):
            line = line[len('export '):]
        key, value = line.split('=', 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
            value = value[1:-1]
        env[key.strip()] = value
    return env


class SystemdWorker(object):
    """The worker's systemd unit, through systemctl on the module host."""

    kind = 'systemd'
    PROPERTIES = ('LoadState', 'ActiveState', 'SubState', 'Environment', 'EnvironmentFiles', 'ExecStart')

    def __init__(self, unit, run_command, get_bin_path, hostname=None):
        self.unit = unit
        self.run_command = run_command
        self.systemctl = get_bin_path('systemctl')
        self.journalctl = get_bin_path('journalctl')
        self.hostname = hostname or socket.gethostname()
        if not self.systemctl:
            raise ManagerUnavailable("systemctl is not available on the host running this module")
        self._props = None

    def label(self):
        return 'systemd unit %s' % self.unit

    def properties(self):
        if self._props is None:
            command = [self.systemctl, 'show', '--no-pager'] + ['-p%s' % name for name in self.PROPERTIES] + [self.unit]
            rc, out, err = self.run_command(command)
            if rc != 0:
                raise ManagerUnavailable("systemctl show %s failed (rc=%d): %s" % (self.unit, rc, (err or out).strip()))
            props = parse_systemctl_show(out)
            if (props.get('LoadState') or [''])[0] in ('not-found', ''):
                raise ManagerUnavailable("systemd unit %s is unknown (LoadState=%s)"
                                         % (self.unit, (props.get('LoadState') or ['?'])[0]))
            self._props = props
        return self._props

    def describe(self):
        props = self.properties()
        state = (props.get('ActiveState') or [''])[0]
        return {'kind': 'systemd', 'unit': self.unit, 'active': state == 'active', 'active_state': state,
                'sub_state': (props.get('SubState') or [''])[0]}

    @staticmethod
    def running(description):
        return description['active']

    def environment(self):
        props = self.properties()
        env = {}
        for value in props.get('Environment') or []:
            try:
                env.update(env_dict(shlex.split(value)))
            except ValueError:
                env.update(env_dict(value.split()))
        for value in props.get('EnvironmentFiles') or []:  # "/etc/korrigo/env (ignore_errors=no)"
            path = value.split(' (', 1)[0].strip()
            if path:
                env.update(read_environment_file(path))  # EnvironmentFile= overrides Environment=
        return env

    def confirm(self, worker_url, explicit=False, answering=()):
        argv = []
        for value in self.properties().get('ExecStart') or []:
            argv = exec_start_argv(value)
            if argv:
                break
        ok, how = confirm_worker(self.label(), self.environment(), argv, self.hostname, worker_url, explicit,
                                 answering, shares_network=True)
        if not ok:
            raise NotOurWorker("refusing to act on %s: %s" % (self.label(), how), refused=[self.unit])
        return [(self.unit, how)]

    def act(self, action):
        verb = 'restart' if action == 'restarted' else 'start'
        rc, _out, err = self.run_command([self.systemctl, verb, self.unit])
        if rc != 0:
            raise KorrigoError("systemctl %s %s failed (rc=%d): %s" % (verb, self.unit, rc, (err or '').strip()))
        self._props = None

    def logs(self, lines=15):
        if not self.journalctl:
            return []
        rc, out, _err = self.run_command([self.journalctl, '-u', self.unit, '-n', str(lines), '--no-pager'])
        return out.strip().splitlines()[-lines:] if rc == 0 else []

    def close(self):
        pass


def worker_manager(manager, params, run_command=None, get_bin_path=None):
    """The ComposeWorkers or SystemdWorker the options name; ManagerUnavailable when it cannot be used."""
    if manager == 'compose':
        return ComposeWorkers(params['compose_project'], params.get('compose_service') or 'celery',
                              params.get('docker_host'))
    if manager == 'systemd':
        return SystemdWorker(params['systemd_unit'], run_command, get_bin_path)
    raise KorrigoError("manager %r does not act on workers" % (manager,))
