# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one mechanism every remediation uses: transaction, advisory lock, guards and audit trail.

A remediation is one transaction: connect, take this remediation's advisory lock (or skip when another
run holds it), run set-based statements whose guards are evaluated inside the statement, write Korrigo's
own trail (grading events and core_auditlog rows) from the same statement, then commit, or roll back in
check mode so the dry run executes exactly the same SQL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid

from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    KORRIGO_TABLES, connect, dict_cursor, jsonable, psycopg2, sql, statement_error,
)
# ConcurrentRun, run_module and the version live in errors.py; importable from here for older callers only.
from ansible_collections.korrigo.ops.plugins.module_utils.errors import (  # pylint: disable=unused-import
    COLLECTION_VERSION, USER_AGENT, ConcurrentRun, KorrigoError, run_module,
)
from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version

ADVISORY_NAMESPACE = 'korrigo.ops'


def validate_uuids(values, what='copy id'):
    """Normalise UUID strings; a malformed one is refused before anything connects."""
    normalised = []
    for value in values or []:
        try:
            normalised.append(str(uuid.UUID(str(value))))
        except (TypeError, ValueError, AttributeError):
            raise KorrigoError("malformed %s '%s': expected a UUID such as 3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b"
                               % (what, value))
    return sorted(set(normalised))


def require_selector(selectors, hint):
    """Refuse to act on everything: at least one selector must be set and non-empty."""
    for value in selectors.values():
        if value not in (None, False, [], '', {}):
            return
    raise KorrigoError("refusing to run with an empty selector (%s): %s" % (', '.join(sorted(selectors)), hint))


def check_max_changes(count, max_changes):
    if max_changes is not None and count > max_changes:
        raise KorrigoError("this run would change %d rows, more than max_changes=%d: nothing was written; "
                           "raise max_changes or narrow the selector" % (count, max_changes),
                           would_change=count)


def check_positive_max_changes(max_changes):
    if max_changes is None or max_changes < 1:
        raise KorrigoError("max_changes must be a positive number (got %r)" % (max_changes,))


# Korrigo's trail, written by the statement that makes the change. `source` names a CTE with columns
# copy_id, event_metadata (jsonb) and audit_metadata (jsonb). Parameters: %(actor_id)s, %(audit_ip)s,
# %(user_agent)s and the action parameter named here; names come from code, never from input.
def grading_event_cte(name, source, action_param):
    return sql.SQL(
        "{name} AS (INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id) "
        "SELECT gen_random_uuid(), {action}, now(), s.event_metadata, %(actor_id)s, s.copy_id "
        "FROM {source} s RETURNING id)"
    ).format(name=sql.Identifier(name), source=sql.Identifier(source), action=sql.Placeholder(action_param))


def audit_cte(name, source, action_param, resource_type='Copy', resource_column='copy_id'):
    """core_auditlog rows; resource_type/resource_column for trails about something else than a copy
    (a PostgreSQL session: 'PostgresSession', 'pid')."""
    return sql.SQL(
        "{name} AS (INSERT INTO core_auditlog (\"timestamp\", student_id, action, resource_type, resource_id, "
        "ip_address, user_agent, metadata, user_id) "
        "SELECT now(), NULL, {action}, {resource_type}, s.{resource_column}::text, %(audit_ip)s::inet, "
        "%(user_agent)s, s.audit_metadata, %(actor_id)s FROM {source} s RETURNING id)"
    ).format(name=sql.Identifier(name), source=sql.Identifier(source), action=sql.Placeholder(action_param),
             resource_type=sql.Literal(resource_type), resource_column=sql.Identifier(resource_column))


# The selector's copies that do not exist, for statements taking %(copy_ids)s (guarded by the caller).
UNKNOWN_COPIES_CTES = (
    "requested AS (SELECT unnest(%(copy_ids)s::uuid[]) AS copy_id), "
    "unknown AS MATERIALIZED (SELECT r.copy_id FROM requested r "
    "WHERE NOT EXISTS (SELECT 1 FROM exams_copy c WHERE c.id = r.copy_id))"
)


def remediation_statement(template):
    """A remediation's statement: its template with {unknown_copies}, {events} and {audit} filled in.

    The trail CTEs read the `changes` CTE (columns copy_id, event_metadata, audit_metadata) and take their
    action names from the %(event_action)s and %(audit_action)s parameters.
    """
    return sql.SQL(template).format(
        unknown_copies=sql.SQL(UNKNOWN_COPIES_CTES),
        events=grading_event_cte('events', 'changes', 'event_action'),
        audit=audit_cte('audit', 'changes', 'audit_action'),
    )


def check_statement_guards(row, max_changes):
    """Guards a remediation statement evaluated in the database (it wrote nothing when they fail)."""
    if row.get('unknown_n'):
        raise KorrigoError("unknown copy ids (not in exams_copy): %s; nothing was changed"
                           % ', '.join(row['unknown_ids']), unknown_copy_ids=row['unknown_ids'])
    check_max_changes(row['selected'], max_changes)


def remediation_result(module, count, actions, version, diff_key, action_key, **extra):
    """The result every remediation returns: changed, count, actions (capped), diff when asked."""
    actions = jsonable(actions)
    result = {
        'changed': count > 0,
        'count': count,
        'actions': actions,
        'actions_truncated': count > len(actions),
        'korrigo_version': version,
        'check_mode': module.check_mode,
    }
    result.update(extra)
    if module._diff:
        result['diff'] = {
            'before': {diff_key: dict((a[action_key], a['before']) for a in actions)},
            'after': {diff_key: dict((a[action_key], a['after']) for a in actions)},
        }
    return result


PREAMBLE_SQL = """
SELECT pg_try_advisory_xact_lock(hashtext(%(namespace)s), hashtext(%(remediation)s)) AS locked,
       (SELECT id FROM auth_user WHERE username = %(username)s) AS actor_id
"""


class Remediation(object):
    """Context manager around one remediation transaction.

    Usage::

        with Remediation(module.params, 'copylock', module.check_mode, tables=('grading_copylock', 'exams_copy')) as rem:
            row = rem.fetchone(SQL, params)

    The session waits at most ``lock_timeout_ms`` for a lock and ``statement_timeout_ms`` for a statement (shared
    connection options). A statement that gives up waiting rolls the transaction back and fails with the sessions
    holding locks on ``tables`` (the tables its statements touch), so nothing is changed.
    """

    def __init__(self, params, name, check_mode, application_name=None, need_actor=True, tables=KORRIGO_TABLES):
        self.params = params
        self.name = name
        self.tables = tuple(tables)
        self.check_mode = check_mode
        self.need_actor = need_actor
        self.application_name = application_name or 'korrigo.ops:%s' % name
        self.conn = None
        self.cursor = None
        self.rules = None
        self.actor_id = None
        self.committed = False

    def __enter__(self):
        self.conn = connect(self.params, self.application_name)
        try:
            self.cursor = dict_cursor(self.conn)
            try:
                self.rules = detect_version(self.cursor)
                self.cursor.execute(PREAMBLE_SQL, {
                    'namespace': ADVISORY_NAMESPACE, 'remediation': self.name,
                    'username': self.params.get('remediation_user'),
                })
                row = self.cursor.fetchone()
            except psycopg2.Error as err:
                raise self.error(err)
            if not row['locked']:
                raise ConcurrentRun("another run of %s holds its advisory lock" % self.name)
            if self.need_actor and row['actor_id'] is None:
                raise KorrigoError("remediation user '%s' does not exist in auth_user: create it in Korrigo "
                                   "(manage.py createsuperuser) or set remediation_user"
                                   % self.params.get('remediation_user'))
            self.actor_id = row['actor_id']
        except BaseException:
            self._close(commit=False)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close(commit=exc_type is None and not self.check_mode)
        return False

    def _close(self, commit):
        if self.conn is None:
            return
        try:
            if commit:
                self.conn.commit()
                self.committed = True
            else:
                self.conn.rollback()
        except psycopg2.Error as err:
            raise KorrigoError("the remediation could not be committed, nothing was changed: %s" % str(err).strip())
        finally:
            self.conn.close()
            self.conn = None

    def trail_params(self, **extra):
        params = {
            'actor_id': self.actor_id,
            'audit_ip': self.params.get('audit_ip_address') or '127.0.0.1',
            'user_agent': USER_AGENT,
        }
        params.update(extra)
        return params

    def error(self, err):
        """KorrigoError for a psycopg2 error of this transaction (a lock timeout names who holds the lock)."""
        return statement_error(err, self.conn, self.params, self.name, self.tables)

    def fetchone(self, statement, params):
        try:
            self.cursor.execute(statement, params)
            return self.cursor.fetchone()
        except psycopg2.Error as err:
            raise self.error(err)

    def fetchall(self, statement, params):
        try:
            self.cursor.execute(statement, params)
            return self.cursor.fetchall()
        except psycopg2.Error as err:
            raise self.error(err)
