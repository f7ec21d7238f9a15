"""read_only_session and the session timeouts, with fakes (no database)."""
import psycopg2
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import database
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    KorrigoError, connection_params, korrigo_common_argument_spec, read_only_session, session_timeouts,
)

HEAD_PROBE = dict(has_copy=True, has_copylock=True, has_auditlog=True, has_subject_variant=True, has_score=True)


class FakeCursor(object):
    def __init__(self, rows, fail_on=None):
        self.rows = list(rows)
        self.fail_on = fail_on
        self.executed = []

    def execute(self, statement, params=None):
        self.executed.append(statement)
        if self.fail_on and self.fail_on in statement:
            raise psycopg2.ProgrammingError('relation "exams_copy" does not exist')

    def fetchone(self):
        return self.rows.pop(0)


class FakeConnection(object):
    def __init__(self, cursor):
        self.cursor_ = cursor
        self.readonly = None
        self.rollbacks = self.commits = 0
        self.closed = False

    def set_session(self, readonly=None, isolation_level=None):
        self.readonly = readonly
        self.isolation_level = isolation_level

    def rollback(self):
        self.rollbacks += 1

    def commit(self):
        self.commits += 1

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    def install(fail_on=None):
        conn = FakeConnection(FakeCursor([HEAD_PROBE, {'n': 1}], fail_on))
        connected = []
        monkeypatch.setattr(database, 'connect', lambda params, name: connected.append(name) or conn)
        monkeypatch.setattr(database, 'dict_cursor', lambda c: c.cursor_)
        conn.connected = connected
        return conn
    return install


def params(**overrides):
    base = dict(login_host='db', login_port=5432, login_db='korrigo', login_user='korrigo', login_password='s',
                login_unix_socket='', ssl_mode='prefer', ca_cert=None, database_url=None, connect_timeout=10,
                lock_timeout_ms=5000, statement_timeout_ms=300000)
    base.update(overrides)
    return base


def test_session_is_read_only_yields_rules_and_always_rolls_back(fake):
    conn = fake()
    with read_only_session(params(), 'korrigo.ops:korrigo_facts') as (cursor, rules):
        cursor.execute('SELECT count(*) AS n FROM exams_copy')
        assert cursor.fetchone() == {'n': 1}
        assert rules['name'] == 'head'
    assert conn.readonly is True and conn.isolation_level == 'REPEATABLE READ'
    assert conn.connected == ['korrigo.ops:korrigo_facts']
    assert (conn.commits, conn.rollbacks, conn.closed) == (0, 1, True)


def test_database_error_becomes_a_korrigo_error_with_the_failure_prefix(fake):
    conn = fake(fail_on='exams_copy')
    with pytest.raises(KorrigoError, match=r'^gathering Korrigo facts failed: relation "exams_copy" does not exist'):
        with read_only_session(params(), 'korrigo.ops:korrigo_facts', 'gathering Korrigo facts failed') as (cur, _r):
            cur.execute('SELECT * FROM exams_copy')
    assert (conn.commits, conn.rollbacks, conn.closed) == (0, 1, True)


def test_default_prefix_names_the_module(fake):
    fake(fail_on='exams_copy')
    with pytest.raises(KorrigoError, match=r'^media_storage failed, nothing was changed: '):
        with read_only_session(params(), 'korrigo.ops:media_storage') as (cur, _r):
            cur.execute('SELECT * FROM exams_copy')


def test_korrigo_error_inside_passes_through_and_closes(fake):
    conn = fake()
    with pytest.raises(KorrigoError, match='boom'):
        with read_only_session(params(), 'korrigo.ops:x'):
            raise KorrigoError('boom')
    assert conn.closed is True


def test_timeouts_are_startup_options_of_every_session():
    kwargs = connection_params(params(lock_timeout_ms=1000, statement_timeout_ms=60000), 'korrigo.ops:copylock')
    assert kwargs['options'] == '-c lock_timeout=1000 -c statement_timeout=60000 -c jit=off'


def test_timeouts_default_like_korrigo_when_absent():
    bare = dict(params())
    del bare['lock_timeout_ms'], bare['statement_timeout_ms']
    assert session_timeouts(bare) == (5000, 300000)
    spec = korrigo_common_argument_spec()
    assert spec['lock_timeout_ms'] == {'type': 'int', 'default': 5000}
    assert spec['statement_timeout_ms'] == {'type': 'int', 'default': 300000}


@pytest.mark.parametrize('name', ['lock_timeout_ms', 'statement_timeout_ms'])
@pytest.mark.parametrize('value', [0, -1])
def test_timeouts_must_be_positive(name, value):
    with pytest.raises(KorrigoError, match='%s must be a positive number of milliseconds' % name):
        connection_params(params(**{name: value}), 'x')


def test_every_credential_option_is_no_log():
    spec = korrigo_common_argument_spec()
    assert spec['login_password']['no_log'] is True and spec['database_url']['no_log'] is True
