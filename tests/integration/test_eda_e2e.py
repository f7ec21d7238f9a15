"""Alert-driven remediation end to end, on loopback with the real programs.

A stand-in Korrigo backend of our own (its /metrics behind METRICS_TOKEN, on this run's HEAD database and an unused
Redis database, so no other test's traffic or worker metrics reach it) is scraped by Debian's Prometheus, which
evaluates the shipped rules (test copy: every `for:` 0s and HighLatency's 5-minute window 20 s, so that the alert
fires and resolves within a minute). Debian's Alertmanager sends the webhook, with the shared token, to our EDA
source (extensions/eda/plugins/event_source/alertmanager.py) in ansible-rulebook running the shipped rulebook, which
runs korrigo.ops.diagnose_latency on the alert's school. Slow requests provoke HighLatency; the test checks that
exactly one run leaves its report although Alertmanager repeats the notification, that the alert resolves (in
Prometheus and Alertmanager), and that the resolved notification starts no second run.

The first tests exercise the source plugin alone (token check, events), without any service.
"""
import asyncio
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import ROOT, VERSIONS, dsn_for

SOURCE = os.path.join(ROOT, 'extensions', 'eda', 'plugins', 'event_source', 'alertmanager.py')
RULES = os.path.join(ROOT, 'monitoring', 'prometheus', 'rules', 'korrigo.rules.yml')
COLLECTIONS = os.path.join(ROOT, '.cache', 'collections')
SCHOOL = 'korrigo-eda'
TOKEN_EDA = 'eda-test-token'
TOKEN_METRICS = 'metrics-test-token'
BUDGET = 150  # seconds for the whole end-to-end scenario once every program is up


def load_source():
    spec = importlib.util.spec_from_file_location('korrigo_eda_alertmanager', SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notification(status='firing', school=SCHOOL, alertname='HighLatency'):
    alert = {'status': status, 'labels': {'alertname': alertname, 'school': school, 'severity': 'P1'},
             'annotations': {'summary': 'slow'}, 'startsAt': '2026-01-01T00:00:00Z', 'fingerprint': 'f1'}
    return {'version': '4', 'status': status, 'receiver': 'eda', 'groupKey': 'g', 'alerts': [alert, dict(alert)]}


def source_call(args, requests):
    """Serve make_app(args) on a free port, send each (method, path, headers, body), return the answers' statuses
    and the events put on the queue."""
    aiohttp = pytest.importorskip('aiohttp')
    from aiohttp import web

    module = load_source()

    async def run():
        queue = asyncio.Queue()
        runner = web.AppRunner(module.make_app(queue, args))
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, '127.0.0.1', port)
        await site.start()
        statuses = []
        try:
            async with aiohttp.ClientSession() as session:
                for method, path, headers, body in requests:
                    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                    async with session.request(method, 'http://127.0.0.1:%d%s' % (port, path), headers=headers,
                                               data=data) as answer:
                        statuses.append(answer.status)
        finally:
            await runner.cleanup()
        events = []
        while not queue.empty():
            events.append(queue.get_nowait())
        return statuses, events

    return asyncio.run(run())


def test_source_refuses_a_missing_or_wrong_token():
    statuses, events = source_call({'token': 's3cret'}, [
        ('POST', '/endpoint', {}, notification()),
        ('POST', '/endpoint', {'Authorization': 'Bearer nope'}, notification()),
        ('POST', '/endpoint', {'X-Token': 's3cre'}, notification()),
        ('POST', '/endpoint', {'Authorization': 's3cret'}, notification()),
    ])
    assert statuses == [401, 401, 401, 401]
    assert events == []


def test_source_puts_one_event_per_alert_with_the_school_as_host():
    statuses, events = source_call({'token': 's3cret'}, [
        ('POST', '/endpoint', {'Authorization': 'Bearer s3cret'}, notification()),
        ('POST', '/endpoint', {'X-Token': 's3cret'}, notification('resolved', school='lycee-b')),
    ])
    assert statuses == [202, 202]
    assert len(events) == 4 and all(set(e) == {'alert', 'meta'} for e in events)
    assert [e['meta']['hosts'] for e in events] == [[SCHOOL], [SCHOOL], ['lycee-b'], ['lycee-b']]
    assert [e['alert']['status'] for e in events] == ['firing', 'firing', 'resolved', 'resolved']
    assert events[0]['meta']['receiver'] == 'eda' and events[0]['meta']['endpoint'] == '/endpoint'
    assert 's3cret' not in json.dumps(events)


def test_source_rejects_bad_requests():
    statuses, events = source_call({'token': 's3cret', 'max_body_bytes': 2048}, [
        ('POST', '/endpoint', {'X-Token': 's3cret'}, b'not json'),
        ('POST', '/endpoint', {'X-Token': 's3cret'}, {'no': 'alerts'}),
        ('POST', '/elsewhere', {'X-Token': 's3cret'}, notification()),
        ('GET', '/endpoint', {'X-Token': 's3cret'}, b''),
        ('POST', '/endpoint', {'X-Token': 's3cret'}, {'alerts': [], 'pad': 'x' * 4096}),
    ])
    assert statuses == [400, 400, 404, 405, 413]
    assert events == []


def test_source_options():
    module = load_source()
    with pytest.raises(ValueError):
        module.make_app(asyncio.Queue(), {})
    statuses, events = source_call({'allow_unauthenticated': True, 'skip_original_data': False,
                                    'data_host_path': 'labels.instance', 'endpoint': 'hook'}, [
        ('POST', '/hook', {}, {'alerts': [{'status': 'firing', 'labels': {'instance': 'web1:8088'}}]}),
    ])
    assert statuses == [202]
    assert 'payload' in events[0] and events[1]['meta']['hosts'] == ['web1']


# --------------------------------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http(url, data=None, headers=None, timeout=5):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return None, ''


def wait_for(what, check, deadline, interval=0.5):
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail('timed out waiting for %s' % what)
        time.sleep(interval)


def test_copy_of_rules(path):
    """The shipped rules with every `for:` 0s and HighLatency's rate window 20 s (test only)."""
    with open(RULES) as handle:
        rules = yaml.safe_load(handle)
    for group in rules['groups']:
        for rule in group['rules']:
            rule['for'] = '0s'
            if rule['alert'] == 'HighLatency':
                assert '[5m]' in rule['expr']
                rule['expr'] = rule['expr'].replace('[5m]', '[20s]')
    with open(path, 'w') as handle:
        yaml.safe_dump(rules, handle)


test_copy_of_rules.__test__ = False


class Processes:
    """The programs this test starts, each in a process group of its own; all killed at the end."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = {}

    def start(self, name, command, env=None, cwd=None):
        log = open(os.path.join(self.logdir, name + '.log'), 'w')
        self.procs[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                             start_new_session=True), log)
        return self.procs[name][0]

    def check_alive(self):
        for name, (proc, _log) in self.procs.items():
            if proc.poll() is not None:
                pytest.fail('%s exited (%s): %s' % (name, proc.returncode, self.log(name)[-3000:]))

    def log(self, name):
        with open(os.path.join(self.logdir, name + '.log')) as handle:
            return handle.read()

    def stop(self):
        for name, (proc, log) in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=10)
            log.close()


def programs():
    found = dict((name, shutil.which(name)) for name in ('prometheus', 'promtool', 'java'))
    found['alertmanager'] = shutil.which('prometheus-alertmanager') or shutil.which('alertmanager')
    found['ansible-rulebook'] = shutil.which('ansible-rulebook') or (
        os.path.join(os.path.dirname(sys.executable), 'ansible-rulebook')
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-rulebook')) else None)
    found['ansible-playbook'] = shutil.which('ansible-playbook') or (
        os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
        if os.path.exists(os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')) else None)
    return found


@pytest.fixture
def loopback(tmp_path, korrigo_head):
    """Backend, Prometheus, Alertmanager and ansible-rulebook on free loopback ports."""
    found = programs()
    missing = sorted(name for name, path in found.items() if not path)
    if missing:
        pytest.skip('not installed: %s (tests/stack/apt-packages.txt, requirements-dev.txt)' % ', '.join(missing))
    ports = dict((name, free_port()) for name in ('backend', 'prometheus', 'alertmanager', 'eda'))
    for name in ('prom-data', 'am-data', 'logs', 'reports', 'run'):
        (tmp_path / name).mkdir()
    procs = Processes(str(tmp_path / 'logs'))
    bindir = os.path.dirname(found['ansible-playbook'])
    base_env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get('PATH', ''))

    # Our own backend: this run's HEAD database (emptied by korrigo_head), Redis database 13 (no worker metrics).
    redis_url = 'redis://127.0.0.1:56379/13'
    backend_env = dict(base_env, DATABASE_URL=dsn_for(VERSIONS['head']), CELERY_BROKER_URL=redis_url,
                       REDIS_URL=redis_url, METRICS_TOKEN=TOKEN_METRICS, KORRIGO_LOG_DIR=str(tmp_path / 'logs'),
                       PYTHONPATH=os.path.join(ROOT, 'tests', 'stack'))
    procs.start('backend', [sys.executable, '-m', 'korrigo_stack.backend', '--host', '127.0.0.1', '--port',
                            str(ports['backend']), '--no-migrate'], env=backend_env)

    rules = str(tmp_path / 'korrigo.rules.yml')
    test_copy_of_rules(rules)
    backend_target = '127.0.0.1:%d' % ports['backend']
    (tmp_path / 'prometheus.yml').write_text(yaml.safe_dump({
        'global': {'scrape_interval': '1s', 'evaluation_interval': '1s', 'scrape_timeout': '1s'},
        'rule_files': [rules],
        'alerting': {'alertmanagers': [{'static_configs': [{'targets': ['127.0.0.1:%d' % ports['alertmanager']]}]}]},
        'scrape_configs': [{
            'job_name': 'korrigo', 'metrics_path': '/metrics',
            # Prometheus 2.42 (Debian 12) has no http_headers: the backend also takes ?token=
            'params': {'token': [TOKEN_METRICS]},
            'static_configs': [{'targets': [backend_target], 'labels': {'school': SCHOOL}}],
        }],
    }))
    (tmp_path / 'alertmanager.yml').write_text(yaml.safe_dump({
        'route': {'receiver': 'eda', 'group_by': ['alertname', 'school'], 'group_wait': '1s',
                  'group_interval': '1s', 'repeat_interval': '3s'},
        'receivers': [{'name': 'eda', 'webhook_configs': [{
            'url': 'http://127.0.0.1:%d/endpoint' % ports['eda'], 'send_resolved': True,
            'http_config': {'authorization': {'type': 'Bearer', 'credentials': TOKEN_EDA}}}]}],
    }))
    procs.start('alertmanager', [found['alertmanager'], '--config.file=%s' % (tmp_path / 'alertmanager.yml'),
                                 '--storage.path=%s' % (tmp_path / 'am-data'),
                                 '--web.listen-address=127.0.0.1:%d' % ports['alertmanager'],
                                 '--cluster.listen-address=', '--log.level=info'], env=base_env)
    procs.start('prometheus', [found['prometheus'], '--config.file=%s' % (tmp_path / 'prometheus.yml'),
                               '--storage.tsdb.path=%s' % (tmp_path / 'prom-data'),
                               '--web.listen-address=127.0.0.1:%d' % ports['prometheus'],
                               '--rules.alert.resend-delay=1s'], env=base_env)

    # The school's inventory: the stack's group_vars with this run's database, backend and report directory.
    with open(os.path.join(ROOT, 'inventories', 'local', 'group_vars', 'korrigo.yml')) as handle:
        group_vars = yaml.safe_load(handle)
    group_vars.update({
        'korrigo_db_name': VERSIONS['head'],
        'korrigo_media_root': os.path.join(ROOT, 'tests', 'stack', '.run', 'media'),
        'korrigo_metrics_url': 'http://%s/metrics' % backend_target,
        'korrigo_metrics_token': TOKEN_METRICS,
        'korrigo_report_dir': str(tmp_path / 'reports'),
        'korrigo_log_file': str(tmp_path / 'logs' / 'django.log'),
        'korrigo_worker_manager': 'none',  # never restart the shared stack's worker from this test
    })
    inventory = str(tmp_path / 'inventory.yml')
    with open(inventory, 'w') as handle:
        yaml.safe_dump({'all': {'children': {'korrigo': {
            'hosts': {SCHOOL: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}},
            'vars': group_vars}}}}, handle)
    eda_env = dict(base_env, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                   KORRIGO_EDA_TOKEN=TOKEN_EDA, KORRIGO_EDA_PORT=str(ports['eda']), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / 'run'))
    procs.start('ansible-rulebook', [found['ansible-rulebook'], '-r', 'korrigo.ops.korrigo_alerts', '-i', inventory,
                                     '-E', 'KORRIGO_EDA_TOKEN,KORRIGO_EDA_PORT', '-v'],
                env=eda_env, cwd=str(tmp_path / 'run'))
    try:
        yield dict(ports=ports, procs=procs, reports=tmp_path / 'reports', backend='http://' + backend_target)
    finally:
        procs.stop()


def prom_query(port, expr):
    status, body = http('http://127.0.0.1:%d/api/v1/query?%s' % (port, urllib.parse.urlencode({'query': expr})))
    assert status == 200, body
    return json.loads(body)['data']['result']


def am_alerts(port):
    status, body = http('http://127.0.0.1:%d/api/v2/alerts?active=true&silenced=false&inhibited=false' % port)
    return json.loads(body) if status == 200 else None


def am_counter(port, name):
    _status, body = http('http://127.0.0.1:%d/metrics' % port)
    pattern = r'^%s\{[^}]*integration="webhook"[^}]*\} (\S+)$' % name
    return sum(float(m.group(1)) for m in re.finditer(pattern, body, re.M))


def stamped_reports(reports):
    return sorted(glob.glob(str(reports / ('high_latency-%s-2*.json' % SCHOOL))))


@pytest.mark.slow
def test_alert_runs_its_remediation_once_and_resolves(loopback):
    ports, procs, reports = loopback['ports'], loopback['procs'], loopback['reports']
    started = time.monotonic()
    deadline = started + BUDGET

    # Everything up: the backend; Prometheus and Alertmanager ready; the EDA source answering (401 without token).
    wait_for('the backend', lambda: http(loopback['backend'] + '/api/health/live/')[0] == 200, deadline)
    assert http(loopback['backend'] + '/metrics')[0] == 403
    wait_for('Prometheus', lambda: procs.check_alive() or http(
        'http://127.0.0.1:%d/-/ready' % ports['prometheus'])[0] == 200, deadline)
    wait_for('Alertmanager', lambda: procs.check_alive() or http(
        'http://127.0.0.1:%d/-/ready' % ports['alertmanager'])[0] == 200, deadline)
    eda = 'http://127.0.0.1:%d/endpoint' % ports['eda']
    wait_for('the EDA source', lambda: procs.check_alive() or http(eda, data=b'{}')[0] == 401, deadline)
    # Prometheus scrapes with the metrics token and loaded every shipped rule.
    wait_for('the scrape with the token', lambda: [r for r in prom_query(ports['prometheus'], 'up{job="korrigo"}')
                                                   if r['value'][1] == '1'], deadline)
    status, body = http('http://127.0.0.1:%d/api/v1/rules' % ports['prometheus'])
    loaded = set(r['name'] for g in json.loads(body)['data']['groups'] for r in g['rules'])
    with open(RULES) as handle:
        shipped = set(r['alert'] for g in yaml.safe_load(handle)['groups'] for r in g['rules'])
    assert loaded == shipped
    assert am_alerts(ports['alertmanager']) == []

    # The endpoint's series must exist before the incident (rate() sees no increase in a series' first sample).
    assert http(loopback['backend'] + '/api/_debug/slow/?seconds=0')[0] == 200
    wait_for('the endpoint in the scrape', lambda: prom_query(
        ports['prometheus'], 'http_request_duration_seconds_count{path="/api/_debug/slow/"}'), deadline)
    time.sleep(2)
    # The incident: API requests taking 6 s (the backend's debug endpoint), in parallel.
    threads = [threading.Thread(target=http, args=(loopback['backend'] + '/api/_debug/slow/?seconds=6',),
                                kwargs={'timeout': 20}) for _index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    def firing():
        procs.check_alive()
        alerts = am_alerts(ports['alertmanager']) or []
        return [a for a in alerts if a['labels'].get('alertname') == 'HighLatency']

    alert = wait_for('HighLatency in Alertmanager', firing, deadline)[0]
    assert alert['labels']['school'] == SCHOOL and alert['labels']['severity'] == 'P1'
    assert alert['annotations']['remediation'] == 'korrigo.ops.diagnose_latency'
    assert set(a['labels']['alertname'] for a in am_alerts(ports['alertmanager'])) == {'HighLatency'}

    # ansible-rulebook ran korrigo.ops.diagnose_latency on the school: its report is there.
    first = wait_for('the remediation report', lambda: procs.check_alive() or stamped_reports(reports), deadline,
                     interval=1)
    with open(first[0]) as handle:
        report = json.load(handle)
    assert report['scenario'] == 'high_latency'
    assert any('/api/_debug/slow/' in line for line in report['found']), report['found']

    # The incident converges: no slow request any more, the alert resolves in Prometheus and in Alertmanager.
    wait_for('HighLatency resolved in Prometheus', lambda: not prom_query(
        ports['prometheus'], 'ALERTS{alertname="HighLatency"}'), deadline, interval=1)
    wait_for('HighLatency resolved in Alertmanager', lambda: not firing(), deadline, interval=1)
    # The resolved notification reached the source (with the token: no notification failed) and started nothing.
    wait_for('the resolved notification', lambda: 'alert HighLatency resolved for %s' % SCHOOL in procs.log(
        'ansible-rulebook'), deadline, interval=1)
    assert am_counter(ports['alertmanager'], 'alertmanager_notifications_failed_total') == 0
    log = procs.log('ansible-rulebook')
    # Alertmanager repeated the firing notification (repeat_interval 3 s): throttling kept it to one run.
    assert log.count('alert HighLatency firing for %s' % SCHOOL) >= 2, log[-4000:]
    time.sleep(5)  # room for a second run to show up, which it must not
    procs.check_alive()
    assert len(stamped_reports(reports)) == 1, stamped_reports(reports)
    log = procs.log('ansible-rulebook')
    assert log.count('PLAY [Diagnose Korrigo') == 1, log[-4000:]
    # The dashboard's queries evaluate on this Prometheus.
    with open(os.path.join(ROOT, 'monitoring', 'grafana', 'dashboards', 'korrigo.json')) as handle:
        dashboard = json.load(handle)
    for panel in dashboard['panels']:
        for target in panel.get('targets', []):
            prom_query(ports['prometheus'], target['expr'].replace('$__rate_interval', '1m').replace('$school', '.*'))
    assert time.monotonic() - started < BUDGET
