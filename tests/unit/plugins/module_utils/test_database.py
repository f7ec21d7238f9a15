import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import database
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    KorrigoError, connection_params, explain_connection_error, jsonable, parse_database_url,
)


def params(**overrides):
    base = dict(login_host='db.example.org', login_port=5432, login_db='korrigo', login_user='korrigo',
                login_password='secret', login_unix_socket='', ssl_mode='prefer', ca_cert=None,
                database_url=None, connect_timeout=10)
    base.update(overrides)
    return base


def test_database_url_is_parsed_like_korrigo_settings():
    assert parse_database_url('postgres://u%40x:p%3Aw@db:6543/kor') == {
        'host': 'db', 'port': 6543, 'user': 'u@x', 'password': 'p:w', 'dbname': 'kor'}


def test_database_url_with_other_scheme_is_refused():
    with pytest.raises(KorrigoError, match='postgresql://'):
        parse_database_url('mysql://u:p@db/kor')


def test_database_url_overrides_login_options():
    kwargs = connection_params(params(database_url='postgresql://a:b@other:1/x'), 'korrigo.ops:test')
    assert (kwargs['host'], kwargs['port'], kwargs['user'], kwargs['password'], kwargs['dbname']) == \
        ('other', 1, 'a', 'b', 'x')
    assert kwargs['application_name'] == 'korrigo.ops:test'


def test_unix_socket_wins_over_host_and_empty_password_is_not_sent():
    kwargs = connection_params(params(login_unix_socket='/run/postgresql', login_password=''), 'x')
    assert kwargs['host'] == '/run/postgresql'
    assert 'password' not in kwargs


@pytest.mark.parametrize('text,expected', [
    ('FATAL:  password authentication failed for user "korrigo"', 'authentication failed'),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', 'unreachable'),
    ('FATAL:  database "nope" does not exist', 'does not exist'),
    ('something else', 'cannot connect'),
])
def test_connection_errors_are_explained(text, expected):
    message = explain_connection_error(Exception(text), {'user': 'korrigo', 'host': 'h', 'port': 1, 'dbname': 'd'})
    assert expected in message
    assert 'korrigo@h:1/d' in message


def test_missing_driver_is_a_clear_failure(monkeypatch):
    monkeypatch.setattr(database, 'HAS_PSYCOPG2', False)
    with pytest.raises(KorrigoError, match='psycopg2'):
        database.connect(params(), 'x')


def test_jsonable_converts_database_types():
    import datetime
    import decimal
    import uuid
    value = {'when': datetime.datetime(2026, 1, 2, 3, 4, 5), 'n': decimal.Decimal('1.5'),
             'ids': (uuid.UUID(int=1),), 'ok': True}
    assert jsonable(value) == {'when': '2026-01-02T03:04:05', 'n': 1.5,
                               'ids': ['00000000-0000-0000-0000-000000000001'], 'ok': True}
