# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One way to reach Korrigo's database: the shared argument spec, the connection, its bounded waits, the
read-only session and the database errors a person can act on."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import decimal
import re
import threading
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


# KorrigoError lives in errors.py; imported here because this file raises it (and for older imports).
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version

# Korrigo's own Django connections use lock_timeout=5s; a remediation never waits longer than Korrigo would.
DEFAULT_LOCK_TIMEOUT_MS = 5000
DEFAULT_STATEMENT_TIMEOUT_MS = 300000
# The tables a statement may wait on, reported when it gave up waiting (read paths and remediations alike).
KORRIGO_TABLES = ('exams_copy', 'grading_copylock', 'grading_annotation', 'grading_gradingevent',
                  'grading_draftstate', 'exams_booklet', 'exams_copy_booklets', 'core_auditlog', 'auth_user')
LOCK_NOT_AVAILABLE = '55P03'
QUERY_CANCELED = '57014'
INSUFFICIENT_PRIVILEGE = '42501'
GRANTS_PLAYBOOK = 'playbooks/database_roles.yml'


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
        lock_timeout_ms=dict(type='int', default=DEFAULT_LOCK_TIMEOUT_MS),
        statement_timeout_ms=dict(type='int', default=DEFAULT_STATEMENT_TIMEOUT_MS),
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


def session_timeouts(params):
    """(lock_timeout_ms, statement_timeout_ms) from module parameters, refused unless both are positive
    (0 would mean "wait forever" to PostgreSQL)."""
    timeouts = []
    for name, default in (('lock_timeout_ms', DEFAULT_LOCK_TIMEOUT_MS),
                          ('statement_timeout_ms', DEFAULT_STATEMENT_TIMEOUT_MS)):
        value = params.get(name)
        if value is None:
            value = default
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KorrigoError("%s must be a positive number of milliseconds (got %r)" % (name, value))
        timeouts.append(value)
    return tuple(timeouts)


def connection_params(params, application_name):
    """libpq keywords from module parameters; database_url wins over login_*. The session's lock_timeout and
    statement_timeout are startup options, so they bound every statement, the first one included. JIT is off:
    each of our statements is one pass that runs once, and at a district's size the planner's estimates turn JIT
    on for compilations longer than what they save (the audit check on 1M copies: 0.75 s of JIT, 0.4 s faster
    without). The setting exists since PostgreSQL 11 (Korrigo runs 15)."""
    lock_timeout, statement_timeout = session_timeouts(params)
    kwargs = {
        'host': params.get('login_unix_socket') or params.get('login_host') or None,
        'port': params.get('login_port'),
        'dbname': params.get('login_db'),
        'user': params.get('login_user'),
        'password': params.get('login_password') or None,
        'sslmode': params.get('ssl_mode'),
        'connect_timeout': params.get('connect_timeout'),
        'application_name': application_name,
        'options': '-c lock_timeout=%d -c statement_timeout=%d -c jit=off' % (lock_timeout, statement_timeout),
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


def close_quietly(conn):
    """Roll back and close; a connection the server already dropped is not a second error."""
    if conn is None:
        return
    try:
        conn.rollback()
    except psycopg2.Error:
        pass
    finally:
        conn.close()


# Sessions (other than the one that gave up) holding a lock on the tables a statement touches, at the table
# level: a row lock (SELECT ... FOR UPDATE, UPDATE, DELETE) shows as RowShareLock/RowExclusiveLock on its table,
# DDL as a stronger one. A plain SELECT's AccessShareLock conflicts with none of the locks our statements take.
LOCK_HOLDERS_SQL = """
SELECT a.pid, a.application_name, a.usename, a.state,
       to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS state_since,
       round(extract(epoch FROM now() - a.state_change)::numeric, 1)::float8 AS state_seconds,
       to_char(a.query_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS query_start,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS xact_start,
       left(a.query, 200) AS query,
       array_agg(DISTINCT c.relname::text ORDER BY c.relname::text) AS relations,
       array_agg(DISTINCT l.mode ORDER BY l.mode) AS modes
  FROM pg_locks l
  JOIN pg_class c ON c.oid = l.relation
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.granted AND l.mode <> 'AccessShareLock'
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.relation IN (SELECT to_regclass(t)::oid FROM unnest(%(tables)s::text[]) AS t)
   AND a.pid <> pg_backend_pid() AND a.pid <> %(own_pid)s
 GROUP BY a.pid, a.application_name, a.usename, a.state, a.state_change, a.query_start, a.xact_start, a.query
 ORDER BY a.xact_start NULLS LAST, a.pid
 LIMIT 20
"""


def lock_holders(params, tables, own_pid=0):
    """Who holds locks on ``tables`` now, looked up in a fresh short connection; [] when nobody does or the
    lookup itself fails (the caller's message says so)."""
    check = dict(params, lock_timeout_ms=1000, statement_timeout_ms=5000)
    conn = None
    try:
        conn = connect(check, 'korrigo.ops:lock_check')
        cursor = dict_cursor(conn)
        cursor.execute(LOCK_HOLDERS_SQL, {'tables': list(tables), 'own_pid': own_pid or 0})
        return [jsonable(row) for row in cursor.fetchall()]
    except (KorrigoError, psycopg2.Error):
        return []
    finally:
        close_quietly(conn)


def describe_holder(holder):
    """One line about a session holding a lock: pid, application, user, state and since when, relations."""
    parts = ["application_name '%s'" % (holder.get('application_name') or '')]
    if holder.get('usename'):
        parts.append('user %s' % holder['usename'])
    state = holder.get('state') or 'state not visible to login_user'
    if holder.get('state_since'):
        state += ' since %s' % holder['state_since']
        if holder.get('state_seconds') is not None:
            state += ' (%ss)' % holder['state_seconds']
    parts.append(state)
    if holder.get('query_start'):
        parts.append('query started %s' % holder['query_start'])
    relations = holder.get('relations') or []
    if relations:
        parts.append('holding %s on %s' % ('/'.join(holder.get('modes') or []) or 'a lock', ', '.join(relations)))
    return 'pid %s (%s)' % (holder.get('pid'), ', '.join(parts))


def busy_message(what, tables, holders, lock_timeout_ms, limit=5):
    """The message of a statement that gave up waiting for a lock (SQLSTATE 55P03)."""
    busy = []
    for holder in holders:
        for relation in holder.get('relations') or []:
            if relation not in busy:
                busy.append(relation)
    ordered = [t for t in tables if t in busy] + [t for t in busy if t not in tables]
    gave_up = '%s gave up after lock_timeout_ms=%d' % (what, lock_timeout_ms)
    if not holders:
        return ("%s busy: the session holding the lock ended it (or is not visible to login_user) before it could be "
                "looked up; %s: nothing was changed; retry later" % ('/'.join(tables), gave_up))
    listed = '; '.join(describe_holder(h) for h in holders[:limit])
    if len(holders) > limit:
        listed += '; and %d more session(s)' % (len(holders) - limit)
    hint = ''
    if any((h.get('state') or '').startswith('idle in transaction') for h in holders):
        hint = ' (a session idle in transaction for long can be ended with korrigo.ops.pg_sessions)'
    return "%s busy: held by %s; %s: nothing was changed; retry later%s" % (
        '/'.join(ordered), listed, gave_up, hint)


PERMISSION_DENIED_RE = re.compile(r'permission denied for (table|relation|sequence|view|schema|database|function)'
                                  r' "?([A-Za-z0-9_.$]+)"?')
OBJECT_PRIVILEGE = {'sequence': 'USAGE', 'schema': 'USAGE', 'database': 'CONNECT', 'function': 'EXECUTE'}
TABLE_PRIVILEGES = ('SELECT', 'INSERT', 'UPDATE', 'DELETE')


def statement_privileges(statement, table):
    """The privileges ``statement`` needs on ``table``, read from its text (INSERT INTO, UPDATE, DELETE FROM,
    FOR UPDATE OF needs UPDATE; any other mention reads it)."""
    text = ' '.join((statement or '').split())
    name = re.escape(table)
    needed = []
    if re.search(r'\bINSERT\s+INTO\s+"?%s"?\b' % name, text, re.I):
        needed.append('INSERT')
    read = re.search(r'\b(FROM|JOIN|USING)\s+"?%s"?\b' % name, text, re.I)
    if re.search(r'\b(?<!FOR )UPDATE\s+"?%s"?\b' % name, text, re.I) or \
            (read and re.search(r'\bFOR\s+(NO\s+KEY\s+)?UPDATE\b', text, re.I)):
        needed.append('UPDATE')  # SELECT ... FOR UPDATE needs UPDATE on the tables it locks
    if re.search(r'\bDELETE\s+FROM\s+"?%s"?\b' % name, text, re.I):
        needed.append('DELETE')
    if read or not needed:
        needed.insert(0, 'SELECT')
    return needed


def missing_table_privileges(conn, table, needed):
    """Of ``needed``, the privileges the session's role lacks on ``table`` (``needed`` when it cannot be asked)."""
    if conn is None:
        return list(needed)
    try:
        conn.rollback()  # the failed transaction first; it changed nothing
        with conn.cursor() as cursor:
            cursor.execute("SELECT p FROM unnest(%s::text[]) WITH ORDINALITY AS n(p, i) "
                           "WHERE NOT has_table_privilege(current_user, %s, p) ORDER BY i", (list(needed), table))
            return [row[0] for row in cursor.fetchall()] or list(needed)
    except psycopg2.Error:
        return list(needed)


def permission_error(err, conn, params, what):
    """KorrigoError for SQLSTATE 42501: which role lacks which grant on what, and where the grants are."""
    text = str(err).strip()
    role = params.get('login_user')
    if params.get('database_url'):
        try:
            role = parse_database_url(params['database_url']).get('user') or role
        except KorrigoError:
            pass
    hint = '(grant it, see %s)' % GRANTS_PLAYBOOK
    match = PERMISSION_DENIED_RE.search(text)
    if match:
        kind, name = match.group(1), match.group(2)
        if kind in OBJECT_PRIVILEGE:
            privilege, missing = OBJECT_PRIVILEGE[kind], [OBJECT_PRIVILEGE[kind]]
        else:
            statement = getattr(getattr(err, 'cursor', None), 'query', None)
            if isinstance(statement, bytes):
                statement = statement.decode('utf-8', 'replace')
            missing = missing_table_privileges(conn, name, statement_privileges(statement, name))
            privilege = '/'.join(missing)
        msg = "permission denied: %s lacks %s on %s %s %s" % (role, privilege, kind.replace('relation', 'table'),
                                                              name, hint)
        details = {'missing_grant': {'role': role, 'privileges': missing, 'object': name, 'type': kind}}
    elif 'terminate' in text.lower() or 'signal' in text.lower() or 'cancel' in text.lower():
        msg = "permission denied: %s lacks membership in pg_signal_backend (to end other sessions) %s" % (role, hint)
        details = {'missing_grant': {'role': role, 'privileges': ['MEMBER'], 'object': 'pg_signal_backend',
                                     'type': 'role'}}
    else:
        msg = "permission denied: %s lacks a privilege %s: %s" % (role, hint, text)
        details = {}
    return KorrigoError("%s: %s; nothing was changed" % (what, msg), **details)


def statement_error(err, conn, params, what, tables=KORRIGO_TABLES, failure=None):
    """A KorrigoError a person can act on for a psycopg2 error raised by one of ``what``'s statements.

    A lock timeout rolls the transaction back, then names the sessions holding locks on ``tables``; a
    statement timeout says which limit was hit. ``failure`` prefixes any other error."""
    code = getattr(err, 'pgcode', None)
    text = str(err).strip()
    lock_timeout, statement_timeout = session_timeouts(params)
    if code == LOCK_NOT_AVAILABLE:
        own_pid = 0
        if conn is not None:
            try:
                own_pid = conn.get_backend_pid()
                conn.rollback()  # our own locks go before the lookup
            except psycopg2.Error:
                pass
        holders = lock_holders(params, tables, own_pid)
        return KorrigoError(busy_message(what, tables, holders, lock_timeout), lock_holders=holders,
                            lock_timeout_ms=lock_timeout)
    if code == INSUFFICIENT_PRIVILEGE:
        return permission_error(err, conn, params, what)
    if code == QUERY_CANCELED and 'statement timeout' in text:
        return KorrigoError("%s: a statement ran longer than statement_timeout_ms=%d and was cancelled: nothing was "
                            "changed; raise statement_timeout_ms or narrow the selector" % (what, statement_timeout),
                            statement_timeout_ms=statement_timeout)
    return KorrigoError("%s: %s" % (failure or '%s failed, nothing was changed' % what, text))


@contextlib.contextmanager
def read_only_session(params, application_name, failure=None, tables=KORRIGO_TABLES):
    """One read-only transaction (one snapshot) on Korrigo's database, bounded by lock and statement timeouts.

    Yields ``(cursor, rules)`` (a dict cursor and the detected version's rules); always rolls back and closes.
    psycopg2 errors become KorrigoError (``failure`` is their message's prefix)::

        with read_only_session(params, 'korrigo.ops:korrigo_facts', 'gathering Korrigo facts failed') as (cur, rules):
            cur.execute(SQL)
    """
    what = application_name.split(':', 1)[-1]
    conn = connect(params, application_name)
    try:
        try:
            # One snapshot for every statement of the session: facts read in several statements agree.
            conn.set_session(readonly=True, isolation_level='REPEATABLE READ')
            cursor = dict_cursor(conn)
            rules = detect_version(cursor)
            yield cursor, rules
        except psycopg2.Error as err:
            raise statement_error(err, conn, params, what, tables, failure)
    finally:
        close_quietly(conn)


class SnapshotReader(object):
    """More reads of the snapshot ``cursor``'s session sees, run beside it on a second connection (a thread;
    psycopg2 waits for the server without the GIL): two long reads take the time of the longer on a database
    with cores to spare, and still agree. ``statements`` is [(statement, parameters)]; ``result()`` is their
    first rows, in order (or raises their KorrigoError).

    When the second connection cannot be had (a server at max_connections), ``result()`` reads them on ``cursor``
    itself, after the caller's own statements: slower, same answer. (pg_export_snapshot cannot run in a
    subtransaction, so there is no savepoint around it: an error there is the session's, as any statement's.)"""

    def __init__(self, cursor, params, application_name, statements, failure, tables=KORRIGO_TABLES):
        self._cursor = cursor
        self._args = (params, application_name, list(statements), failure, tables)
        self._rows = self._error = self._conn = None
        cursor.execute('SELECT pg_export_snapshot() AS snapshot')
        self._snapshot = cursor.fetchone()['snapshot']
        self._thread = threading.Thread(target=self._run)
        self._thread.daemon = True
        self._thread.start()

    def _run(self):
        params, application_name, statements, failure, tables = self._args
        try:
            self._conn = connect(params, application_name)
        except KorrigoError:
            return  # read on the caller's cursor (result)
        conn = self._conn
        try:
            conn.set_session(readonly=True, isolation_level='REPEATABLE READ')
            cursor = dict_cursor(conn)
            try:
                cursor.execute('SET TRANSACTION SNAPSHOT %s', (self._snapshot,))
                rows = []
                for statement, statement_params in statements:
                    cursor.execute(statement, statement_params)
                    rows.append(cursor.fetchone())
                self._rows = rows
            except psycopg2.Error as err:
                self._error = statement_error(err, conn, params, application_name.split(':', 1)[-1], tables, failure)
        finally:
            close_quietly(conn)

    def cancel(self):
        """Stop the read (the statement beside it failed): nothing is waited for."""
        conn = self._conn
        if conn is not None:
            try:
                conn.cancel()
            except psycopg2.Error:
                pass

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._rows is not None:
            return self._rows
        params, application_name, statements, failure, tables = self._args
        rows = []
        try:
            for statement, statement_params in statements:
                self._cursor.execute(statement, statement_params)
                rows.append(self._cursor.fetchone())
        except psycopg2.Error as err:  # the same KorrigoError as beside (the caller's statements are done)
            raise statement_error(err, self._cursor.connection, params, application_name.split(':', 1)[-1], tables,
                                  failure)
        return rows


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
