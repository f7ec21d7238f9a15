#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_sessions
short_description: Terminate PostgreSQL sessions that stall Korrigo (idle in transaction, or running too long)
version_added: 0.2.0
description:
  - The guarded form of scenario 4's C(pg_terminate_backend) step. One statement selects, in Korrigo's database,
    the client sessions idle in a transaction for more than O(idle_in_transaction_seconds) and/or running one query
    for more than O(running_seconds), terminates them and writes one C(core_auditlog) row per terminated session
    (resource type C(PostgresSession), resource id the pid, the session's user, application, state, durations and
    query in the metadata) with O(remediation_user) as actor.
  - Never terminates this collection's own sessions (C(application_name) C(korrigo.ops:*)), sessions of other
    databases or non-client backends, and never a superuser's session unless O(include_superusers) is set.
  - Check mode selects exactly the same sessions with the same statement, terminates none and rolls the audit rows
    back, so RV(actions) lists what a real run would terminate.
  - Termination is not transactional - a session terminated stays terminated even if the audit rows could not be
    committed afterwards (the module then fails and says so).
  - Needs PostgreSQL 14 or later (C(pg_terminate_backend) with a timeout, so a second run does not see the
    terminated sessions any more) and a role allowed to signal the sessions (superuser or C(pg_signal_backend)).
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  idle_in_transaction_seconds:
    description:
      - Terminate sessions C(idle in transaction) (or C(idle in transaction (aborted))) for longer than this.
        They hold their row locks and block Korrigo's C(select_for_update).
      - Unset leaves such sessions alone. At least one of O(idle_in_transaction_seconds) and O(running_seconds) is required.
    type: int
  running_seconds:
    description:
      - Terminate active sessions whose current query started longer ago than this (the playbook uses 5 minutes).
      - Unset leaves running queries alone.
    type: int
  pids:
    description:
      - Restrict the run to these backend pids (the thresholds still apply).
    type: list
    elements: int
    default: []
  include_superusers:
    description:
      - Also terminate sessions of superuser roles.
    type: bool
    default: false
  reason:
    description:
      - Why the sessions are terminated; recorded in the audit rows.
    type: str
    default: stalled session terminated by korrigo.ops (incident playbook scenario 4)
  terminate_timeout_ms:
    description:
      - Milliseconds C(pg_terminate_backend) waits for each session to end.
    type: int
    default: 5000
  query_length:
    description:
      - Characters of each query text kept in the result and the audit row.
    type: int
    default: 200
  actions_limit:
    description:
      - Most entries listed in RV(actions); RV(count) and the audit trail always cover every session.
    type: int
    default: 1000
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.attributes_remediation
attributes:
  check_mode:
    description:
      - Selects the same sessions with the same statement, terminates none and rolls the audit rows back. A real
        run's terminations are not transactional.
    support: full
seealso:
  - module: korrigo.ops.korrigo_latency_facts
'''

EXAMPLES = r'''
- name: What would be terminated (dry run)
  korrigo.ops.pg_sessions:
    login_host: 127.0.0.1
    login_user: postgres
    login_password: "{{ korrigo_db_password }}"
    idle_in_transaction_seconds: 300
    running_seconds: 300
  check_mode: true

- name: Terminate sessions idle in a transaction for more than 10 minutes, at most 5
  korrigo.ops.pg_sessions:
    database_url: "{{ korrigo_database_url }}"
    idle_in_transaction_seconds: 600
    max_changes: 5
'''

RETURN = r'''
count:
  description: Sessions terminated (or that would be in check mode).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
  sample: 1
actions:
  description: One entry per terminated session, longest transaction first.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - kind: terminate_session
      pid: 4242
      usename: korrigo_app
      application_name: gunicorn
      reason: idle_in_transaction
      terminated: true
      before: {state: idle in transaction, state_seconds: 912.4, xact_seconds: 913.0, query: "UPDATE exams_copy ..."}
      after: {state: terminated}
skipped_superusers:
  description: Sessions over a threshold left alone because their role is a superuser.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
korrigo_version:
  description: Korrigo version detected from the schema.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: str
skipped_concurrent_run:
  description: True when another run held this remediation's advisory lock and nothing was done.
  returned: when another run is in progress
  type: bool
msg:
  description: Which run holds the lock.
  returned: when another run is in progress
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    korrigo_common_argument_spec, korrigo_guard_argument_spec, sql,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, audit_cte, check_positive_max_changes, check_statement_guards, remediation_result,
    require_selector,
)

TERMINATE_TEMPLATE = """
WITH over AS MATERIALIZED (
    SELECT a.pid, a.usename, a.application_name, host(a.client_addr) AS client_addr, a.state,
           extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
           extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
           extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
           left(a.query, %(query_length)s) AS query, coalesce(r.rolsuper, false) AS superuser,
           CASE WHEN a.state LIKE 'idle in transaction%%' THEN 'idle_in_transaction' ELSE 'long_running' END AS reason
      FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
     WHERE a.backend_type = 'client backend'
       AND a.pid <> pg_backend_pid()
       AND a.datname = current_database()
       AND a.application_name NOT LIKE 'korrigo.ops:%%'
       AND (cardinality(%(pids)s::int[]) = 0 OR a.pid = ANY(%(pids)s::int[]))
       AND ((%(idle_seconds)s::int IS NOT NULL AND a.state LIKE 'idle in transaction%%'
             AND a.state_change < now() - make_interval(secs => %(idle_seconds)s::int))
         OR (%(running_seconds)s::int IS NOT NULL AND a.state = 'active'
             AND a.query_start < now() - make_interval(secs => %(running_seconds)s::int)))
), selected AS MATERIALIZED (
    SELECT * FROM over WHERE %(include_superusers)s OR NOT superuser
), guard AS (
    SELECT (SELECT count(*) FROM selected) AS n
), changes AS MATERIALIZED (
    SELECT s.*,
           jsonb_build_object('remediation', 'korrigo.ops.pg_sessions', 'reason', %(reason)s::text,
                              'why', s.reason, 'usename', s.usename, 'application_name', s.application_name,
                              'client_addr', s.client_addr, 'state', s.state, 'state_seconds', s.state_seconds,
                              'query_seconds', s.query_seconds, 'xact_seconds', s.xact_seconds,
                              'query', s.query, 'dry_run', %(dry_run)s) AS audit_metadata
      FROM selected s, guard g
     WHERE g.n <= %(max_changes)s
), terminated AS MATERIALIZED (
    SELECT ch.*, CASE WHEN %(dry_run)s THEN true
                      ELSE pg_terminate_backend(ch.pid, %(timeout_ms)s::bigint) END AS ok
      FROM changes ch
), trail AS (
    SELECT * FROM terminated WHERE ok
), {audit}
SELECT g.n AS selected,
       (SELECT count(*) FROM trail) AS terminated,
       (SELECT count(*) FROM terminated WHERE NOT ok) AS not_terminated,
       (SELECT count(*) FROM audit) AS audit_rows,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', 'terminate_session', 'pid', t.pid, 'usename', t.usename,
            'application_name', t.application_name, 'reason', t.reason, 'terminated', t.ok,
            'before', jsonb_build_object('state', t.state, 'state_seconds', t.state_seconds,
                                         'query_seconds', t.query_seconds, 'xact_seconds', t.xact_seconds,
                                         'query', t.query),
            'after', jsonb_build_object('state', CASE WHEN t.ok THEN 'terminated' ELSE t.state END))
            ORDER BY t.xact_seconds DESC NULLS LAST, t.pid), '[]')
          FROM (SELECT * FROM terminated ORDER BY xact_seconds DESC NULLS LAST, pid LIMIT %(actions_limit)s) t)
           AS actions,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('pid', o.pid, 'usename', o.usename, 'state', o.state,
                                                     'reason', o.reason) ORDER BY o.pid), '[]')
          FROM over o WHERE o.superuser AND NOT %(include_superusers)s) AS skipped_superusers
  FROM guard g
"""


def terminate_statement():
    return sql.SQL(TERMINATE_TEMPLATE).format(
        audit=audit_cte('audit', 'trail', 'audit_action', resource_type='PostgresSession', resource_column='pid'))


def validate(params):
    require_selector({'idle_in_transaction_seconds': params['idle_in_transaction_seconds'],
                      'running_seconds': params['running_seconds']},
                     'set idle_in_transaction_seconds and/or running_seconds')
    for name in ('idle_in_transaction_seconds', 'running_seconds'):
        if params[name] is not None and params[name] < 1:
            raise KorrigoError("%s must be at least 1 second (got %d)" % (name, params[name]))
    if any(pid < 1 for pid in params['pids']):
        raise KorrigoError("pids must be positive backend process ids")
    check_positive_max_changes(params['max_changes'])


def terminate_sessions(module):
    params = module.params
    validate(params)
    statement_params = {
        'idle_seconds': params['idle_in_transaction_seconds'],
        'running_seconds': params['running_seconds'],
        'pids': sorted(set(params['pids'])),
        'include_superusers': params['include_superusers'],
        'reason': params['reason'],
        'dry_run': module.check_mode,
        'timeout_ms': params['terminate_timeout_ms'],
        'query_length': params['query_length'],
        'max_changes': params['max_changes'],
        'actions_limit': params['actions_limit'],
        'audit_action': 'korrigo_ops.pg_sessions.terminate',
    }
    with Remediation(params, 'pg_sessions', module.check_mode) as rem:
        row = rem.fetchone(terminate_statement(), rem.trail_params(**statement_params))
        check_statement_guards(row, params['max_changes'])
    if row['not_terminated']:
        raise KorrigoError("%d session(s) did not end within %d ms of pg_terminate_backend; %d were terminated and "
                           "audited" % (row['not_terminated'], params['terminate_timeout_ms'], row['terminated']),
                           actions=row['actions'])
    return remediation_result(module, row['terminated'], row['actions'], rem.rules['name'], 'sessions', 'pid',
                              audit_rows=row['audit_rows'], skipped_superusers=row['skipped_superusers'])


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        idle_in_transaction_seconds=dict(type='int'),
        running_seconds=dict(type='int'),
        pids=dict(type='list', elements='int', default=[]),
        include_superusers=dict(type='bool', default=False),
        reason=dict(type='str', default='stalled session terminated by korrigo.ops (incident playbook scenario 4)'),
        terminate_timeout_ms=dict(type='int', default=5000),
        query_length=dict(type='int', default=200),
        actions_limit=dict(type='int', default=1000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: terminate_sessions(module))


if __name__ == '__main__':
    main()
