"""Integration fixtures: the real stack (PostgreSQL 15, Redis, Celery), seeded per test, both Korrigo versions."""
import json
import os
import subprocess
import sys
import tempfile
import time

import psycopg2
import psycopg2.extras
import pytest
from psycopg2 import sql

from korrigo_stack import migrate, seed as stack_seed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(ROOT, 'plugins', 'modules')
COLLECTIONS = os.path.join(ROOT, '.cache', 'collections')
DSN = os.environ.get('KORRIGO_DSN', 'postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo')
DB = dict(login_host='127.0.0.1', login_port=55432, login_user='korrigo', login_password='stack-secret')
# KORRIGO_TEST_DB_SUFFIX gives a developer's run databases of its own (the stack's worker and backend only
# use `korrigo`, so tests that need them only pass without it).
DB_SUFFIX = os.environ.get('KORRIGO_TEST_DB_SUFFIX', '')
VERSIONS = {'head': 'korrigo' + DB_SUFFIX, '8f16b75': 'korrigo_8f16b75' + DB_SUFFIX}
# Every table a remediation may touch: compared byte for byte around dry runs and refused runs.
WATCHED_TABLES = ('auth_user', 'exams_exam', 'exams_booklet', 'exams_copy', 'exams_copy_booklets',
                  'grading_annotation', 'grading_gradingevent', 'grading_copylock', 'grading_draftstate',
                  'core_auditlog')


def _reachable(dsn):
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture(scope='session')
def stack():
    """The compose stack; brought up when `make integration` did not already."""
    if not _reachable(DSN):
        subprocess.run([os.path.join(ROOT, 'tests', 'stack', 'up.sh')], check=True)
    deadline = time.time() + 60
    while not _reachable(DSN):
        if time.time() > deadline:
            pytest.fail('the test stack database is not reachable at %s' % DSN)
        time.sleep(1)
    return DSN


def dsn_for(database):
    return DSN.rsplit('/', 1)[0] + '/' + database


@pytest.fixture(scope='session')
def databases(stack):
    """Both schema variants: the stack's own database is HEAD, a second one is 8f16b75."""
    if DB_SUFFIX:
        migrate.create_database(DSN, VERSIONS['head'], 'head')
    migrate.create_database(DSN, VERSIONS['8f16b75'], '8f16b75')
    return dict((version, dsn_for(name)) for version, name in VERSIONS.items())


@pytest.fixture(params=sorted(VERSIONS))
def korrigo(request, databases):
    """A Korrigo database of each version, emptied; call .seed(scenario) to create an incident."""
    conn = psycopg2.connect(databases[request.param], cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True
    stack_seed.reset(conn)
    yield KorrigoDB(conn, request.param, VERSIONS[request.param])
    conn.close()


@pytest.fixture
def korrigo_head(databases):
    conn = psycopg2.connect(databases['head'], cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True
    stack_seed.reset(conn)
    yield KorrigoDB(conn, 'head', VERSIONS['head'])
    conn.close()


@pytest.fixture
def stack_head_db(stack):
    """The stack's own HEAD database `korrigo`, emptied: the one its worker and backend serve (whatever
    KORRIGO_TEST_DB_SUFFIX says), for tests that need the worker to finalize or import. Seeded copy ids are the same
    in every run, so the broker's "already queued" markers of earlier tests are cleared too."""
    import redis
    broker = redis.Redis.from_url('redis://127.0.0.1:56379/0')
    for key in broker.scan_iter('korrigo_ops:queued:*'):
        broker.delete(key)
    conn = psycopg2.connect(DSN, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True
    stack_seed.reset(conn)
    yield KorrigoDB(conn, 'head', 'korrigo')
    conn.close()


class KorrigoDB(object):
    def __init__(self, conn, version, name):
        self.conn = conn
        self.version = version
        self.name = name
        self.connection = dict(DB, login_db=name)

    def seed(self, scenario, count=None):
        return stack_seed.seed(self.conn, scenario, count=count)

    def query(self, statement, params=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()

    def scalar(self, statement, params=None):
        return list(self.query(statement, params)[0].values())[0]

    def checksums(self):
        sums = {}
        with self.conn.cursor() as cur:
            for table in WATCHED_TABLES:
                cur.execute(sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS s "
                                    "FROM {} t").format(sql.Identifier(table)))
                sums[table] = cur.fetchone()['s']
        return sums

    def run(self, module, check_mode=False, diff=False, **args):
        return run_module(module, check_mode=check_mode, diff=diff, **dict(self.connection, **args))

    def start(self, module, **args):
        return start_module(module, **dict(self.connection, **args))


def _module_command(module, args, check_mode=False, diff=False):
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    handle, path = tempfile.mkstemp(suffix='.json')
    with os.fdopen(handle, 'w') as out:
        json.dump({'ANSIBLE_MODULE_ARGS': payload}, out)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    return [sys.executable, os.path.join(MODULES, module + '.py'), path], env, path


def _result(stdout, path):
    os.unlink(path)
    try:
        return json.loads(stdout)
    except ValueError:
        raise AssertionError('module printed no JSON: %r' % stdout)


def run_module(module, check_mode=False, diff=False, **args):
    """Run a module as Ansible does (its own process, args in a JSON file) and return its result."""
    command, env, path = _module_command(module, args, check_mode, diff)
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    return _result(proc.stdout, path)


def start_module(module, **args):
    command, env, path = _module_command(module, args)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, path


def finish_module(started):
    proc, path = started
    stdout, _stderr = proc.communicate(timeout=300)
    return _result(stdout, path)


def restart_service(service, health_url=None, timeout=60):
    """Restart one compose service of the stack (found by its labels, as Compose v1 and v2 both set them)."""
    import urllib.request
    ids = subprocess.run(['docker', 'ps', '-q', '--filter', 'label=com.docker.compose.project=korrigo',
                          '--filter', 'label=com.docker.compose.service=%s' % service],
                         capture_output=True, text=True, check=True).stdout.split()
    assert ids, 'no running %s container in the korrigo stack' % service
    subprocess.run(['docker', 'restart'] + ids, capture_output=True, check=True)
    deadline = time.time() + timeout
    while health_url:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            pytest.fail('%s did not come back within %ss' % (service, timeout))
        time.sleep(0.5)
