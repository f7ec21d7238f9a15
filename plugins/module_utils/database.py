# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to reach Korrigo's database: the shared argument spec, the connection and its errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import traceback

try:
    from urllib.parse import urlparse, unquote
except ImportError:  # pragma: no cover - Python 2 is not supported, keeps sanity's compile test quiet
    from urlparse import urlparse  # type: ignore
    from urllib import unquote  # type: ignore

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.extras
    # Re-exported: the modules and remediation.py build their statements with psycopg2.sql.
    from psycopg2 import sql  # pylint: disable=unused-import
    HAS_PSYCOPG2 = True
except ImportError:
    psycopg2 = None
    sql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()


class KorrigoError(Exception):
    """A failure a person can act on; only a module's edge turns it into fail_json."""

    def __init__(self, msg, **details):
        super(KorrigoError, self).__init__(msg)
        self.msg = msg
        self.details = details


def korrigo_common_argument_spec():
    """Connection options shared by every module (documented in the korrigo.ops.korrigo fragment)."""
    return dict(
        login_host=dict(type='str', default='', aliases=['host']),
        login_port=dict(type='int', default=5432, aliases=['port']),
        login_db=dict(type='str', default='korrigo', aliases=['db']),
        login_user=dict(type='str', default='postgres'),
        login_password=dict(type='str', default='', no_log=True),
        login_unix_socket=dict(type='str', default=''),
        ssl_mode=dict(type='str', default='prefer',
                      choices=['allow', 'disable', 'prefer', 'require', 'verify-ca', 'verify-full']),
        ca_cert=dict(type='path', aliases=['ssl_rootcert']),
        database_url=dict(type='str', no_log=True),
        connect_timeout=dict(type='int', default=10),
    )


def korrigo_guard_argument_spec():
    """Options of every module that changes data (the korrigo.ops.korrigo.guards fragment)."""
    return dict(
        max_changes=dict(type='int', default=100),
        remediation_user=dict(type='str', default='korrigo-ops'),
        audit_ip_address=dict(type='str', default='127.0.0.1'),
        lock_wait=dict(type='str', default='skip', choices=['skip', 'fail']),
    )


def parse_database_url(url):
    """Korrigo's DATABASE_URL (postgres:// or postgresql://) to libpq keywords."""
    parsed = urlparse(url)
    if parsed.scheme not in ('postgres', 'postgresql', 'pgsql'):
        raise KorrigoError("database_url must start with postgresql:// (got scheme '%s')" % parsed.scheme)
    params = {}
    if parsed.hostname:
        params['host'] = parsed.hostname
    if parsed.port:
        params['port'] = parsed.port
    if parsed.username:
        params['user'] = unquote(parsed.username)
    if parsed.password:
        params['password'] = unquote(parsed.password)
    dbname = parsed.path.lstrip('/')
    if dbname:
        params['dbname'] = unquote(dbname)
    return params


def connection_params(params, application_name):
    """libpq keywords from module parameters; database_url wins over login_*."""
    kwargs = {
        'host': params.get('login_unix_socket') or params.get('login_host') or None,
        'port': params.get('login_port'),
        'dbname': params.get('login_db'),
        'user': params.get('login_user'),
        'password': params.get('login_password') or None,
        'sslmode': params.get('ssl_mode'),
        'connect_timeout': params.get('connect_timeout'),
        'application_name': application_name,
    }
    if params.get('ca_cert'):
        kwargs['sslrootcert'] = params['ca_cert']
    if params.get('database_url'):
        kwargs.update(parse_database_url(params['database_url']))
    return dict((k, v) for k, v in kwargs.items() if v is not None)


def describe_target(kwargs):
    return "%s@%s:%s/%s" % (kwargs.get('user'), kwargs.get('host') or 'local socket',
                            kwargs.get('port'), kwargs.get('dbname'))


def explain_connection_error(exc, kwargs):
    text = str(exc).strip()
    target = describe_target(kwargs)
    lowered = text.lower()
    if 'password authentication failed' in lowered or 'no password supplied' in lowered:
        return "authentication failed for %s: check login_user/login_password (%s)" % (target, text)
    if 'does not exist' in lowered and 'database' in lowered:
        return "database of %s does not exist: check login_db (%s)" % (target, text)
    if 'connection refused' in lowered or 'could not connect' in lowered or 'timeout' in lowered \
            or 'could not translate host name' in lowered or 'is the server running' in lowered:
        return "database server unreachable at %s: is PostgreSQL up? (%s)" % (target, text)
    return "cannot connect to %s: %s" % (target, text)


def connect(params, application_name):
    """Open a psycopg2 connection (autocommit off) or raise KorrigoError."""
    if not HAS_PSYCOPG2:
        raise KorrigoError("the psycopg2 Python library is required on the host running this module "
                           "(pip install psycopg2-binary)", exception=PSYCOPG2_IMPORT_ERROR)
    kwargs = connection_params(params, application_name)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise KorrigoError(explain_connection_error(exc, kwargs))
    conn.autocommit = False
    return conn


def dict_cursor(conn):
    return conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def jsonable(value):
    """Make query results safe for Ansible's JSON (datetimes, UUIDs, Decimals)."""
    if isinstance(value, dict):
        return dict((k, jsonable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, 'isoformat'):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
