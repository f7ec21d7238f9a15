#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: copylock
short_description: Release Korrigo copy locks and reconcile the copies they held
version_added: 0.1.0
description:
  - Deletes C(grading_copylock) rows chosen by O(expired) and/or O(copy_ids), in one statement whose
    expiry test runs in the database, so a lock whose heartbeat renewed it after facts were read survives.
  - Each copy that lost its lock and is C(LOCKED) is reconciled as Korrigo's C(_reconcile_lock_state) does
    (status C(READY), C(locked_at) and C(locked_by_id) cleared). Other copies keep their status.
  - Writes an C(UNLOCK) grading event and a C(core_auditlog) row per released lock, with
    O(remediation_user) as actor. The teacher's C(grading_draftstate) rows are never touched.
  - Works on both Korrigo versions (HEAD without the lock workflow, and 8f16b75 with it).
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  expired:
    description:
      - Select every expired lock (C(expires_at < now())), or only the expired locks of O(copy_ids) when both are set.
    type: bool
    default: false
  copy_ids:
    description:
      - UUIDs of the copies whose locks to release. Unknown copies make the module fail without change.
      - Without O(force), only the expired locks of these copies are released; active ones are returned in RV(kept).
    type: list
    elements: str
    default: []
  force:
    description:
      - Also release active (non-expired) locks of O(copy_ids). Requires O(copy_ids) and O(reason).
    type: bool
    default: false
  reason:
    description:
      - Why the locks are released; recorded in the grading events and audit rows. Required with O(force).
      - Defaults to C(expired lock released by korrigo.ops) when O(force) is not set.
    type: str
  actions_limit:
    description:
      - Most entries listed in RV(actions) (and in the diff); RV(count) and the audit trail always cover every row.
      - Keeps results readable and cheap when a remediation changes 100k rows.
    type: int
    default: 1000
  gather_after:
    description:
      - Once the release is committed (or, in check mode, rolled back), read these subsets of
        M(korrigo.ops.korrigo_facts) in a new read-only snapshot and return them as RV(korrigo_after), by the
        same statements as that module (a role verifies its release without a module process of its own).
      - Empty (the default) reads nothing.
    type: list
    elements: str
    choices: [copies, locks]
    default: []
  lock_age_minutes:
    description:
      - With O(gather_after), what M(korrigo.ops.korrigo_facts) O(korrigo.ops.korrigo_facts#module:lock_age_minutes)
        would be (locks older than this are listed as old).
    type: int
    default: 60
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.attributes_remediation
seealso:
  - module: korrigo.ops.korrigo_facts
'''

EXAMPLES = r'''
- name: Release every expired lock
  korrigo.ops.copylock:
    login_host: 127.0.0.1
    login_user: korrigo
    login_password: "{{ korrigo_db_password }}"
    expired: true
    max_changes: 50

- name: Force-release the lock of one copy a teacher left open
  korrigo.ops.copylock:
    database_url: "{{ korrigo_database_url }}"
    copy_ids:
      - 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e
    force: true
    reason: "teacher's browser crashed, ticket #4312"
'''

RETURN = r'''
count:
  description: Number of locks released (or that would be released in check mode).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
  sample: 5
actions:
  description: One entry per released lock, at most O(actions_limit), ordered by anonymous id.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - kind: release_lock
      copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e
      anonymous_id: IMPORT-0B8F3C52
      owner: prof.martin
      expired: true
      expired_since_seconds: 1800.0
      before: {status: LOCKED, lock_expires_at: '2026-11-30T01:00:00+00:00'}
      after: {status: READY, lock_expires_at: null}
actions_truncated:
  description: True when more locks were released than O(actions_limit) lists.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: bool
kept:
  description: Active locks of O(copy_ids) left in place because O(force) was not set.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
korrigo_version:
  description: Korrigo version detected from the schema (C(head) or C(8f16b75)).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: str
  sample: head
korrigo_after:
  description:
    - The facts of O(gather_after), read after the commit, shaped as M(korrigo.ops.korrigo_facts)'s
      C(ansible_facts.korrigo) (lists hold at most O(actions_limit) entries).
  returned: when O(gather_after) is set, unless another run held the advisory lock
  type: dict
  sample:
    version: {name: head}
    locks: {total: 2, active: 2, expired_total: 0}
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
from ansible_collections.korrigo.ops.plugins.module_utils.facts import FACT_DEFAULTS, read_facts
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    jsonable, korrigo_common_argument_spec, korrigo_guard_argument_spec,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, check_positive_max_changes, check_statement_guards, remediation_result,
    remediation_statement, require_selector, validate_uuids,
)

DEFAULT_REASON = 'expired lock released by korrigo.ops'

# The trail's metadata is built with the row lock (one materialization of the locked rows, not two); ``changes`` is
# those rows when the guards pass, read in place by each change and trail CTE.
RELEASE_TEMPLATE = """
WITH {unknown_copies}, selected AS MATERIALIZED (
    SELECT l.id AS lock_id, l.copy_id, l.owner_id, u.username AS owner, l.locked_at, l.expires_at,
           l.expires_at < now() AS expired,
           extract(epoch FROM now() - l.expires_at)::float8 AS expired_since_seconds,
           c.anonymous_id, c.status AS status_before,
           CASE WHEN c.status = 'LOCKED' THEN 'READY' ELSE c.status END AS status_after,
           jsonb_build_object('remediation', 'korrigo.ops.copylock', 'reason', %(reason)s::text,
                              'lock_owner_id', l.owner_id, 'lock_expires_at', l.expires_at,
                              'forced', NOT l.expires_at < now()) AS event_metadata,
           jsonb_build_object('remediation', 'korrigo.ops.copylock', 'reason', %(reason)s::text,
                              'lock', jsonb_build_object('id', l.id, 'owner', u.username,
                                                         'owner_id', l.owner_id, 'locked_at', l.locked_at,
                                                         'expires_at', l.expires_at),
                              'status_before', c.status,
                              'status_after', CASE WHEN c.status = 'LOCKED' THEN 'READY' ELSE c.status END)
               AS audit_metadata
      FROM grading_copylock l
      JOIN exams_copy c ON c.id = l.copy_id
      JOIN auth_user u ON u.id = l.owner_id
     WHERE (%(all_copies)s OR l.copy_id = ANY(%(copy_ids)s::uuid[]))
       AND (l.expires_at < now() OR %(include_active)s)
     ORDER BY l.copy_id
       FOR UPDATE OF l, c
), kept AS (
    SELECT l.copy_id, c.anonymous_id, l.expires_at
      FROM grading_copylock l JOIN exams_copy c ON c.id = l.copy_id
     WHERE l.copy_id = ANY(%(copy_ids)s::uuid[]) AND l.expires_at >= now() AND NOT %(include_active)s
), guard AS (
    SELECT (SELECT count(*) FROM selected) AS n, (SELECT count(*) FROM unknown) AS unknown_n
), changes AS NOT MATERIALIZED (
    SELECT s.* FROM selected s, guard g WHERE g.n <= %(max_changes)s AND g.unknown_n = 0
), released AS (
    DELETE FROM grading_copylock l USING changes ch WHERE l.id = ch.lock_id RETURNING l.id
), reconciled AS (
    UPDATE exams_copy c SET status = 'READY', locked_at = NULL, locked_by_id = NULL
      FROM changes ch
     WHERE c.id = ch.copy_id AND ch.status_before = 'LOCKED'
    RETURNING c.id
), {events}, {audit}
SELECT g.n AS selected, g.unknown_n,
       (SELECT coalesce(jsonb_agg(copy_id ORDER BY copy_id), '[]') FROM unknown) AS unknown_ids,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', 'release_lock', 'copy_id', ch.copy_id, 'anonymous_id', ch.anonymous_id,
            'owner', ch.owner, 'expired', ch.expired, 'expired_since_seconds', ch.expired_since_seconds,
            'before', jsonb_build_object('status', ch.status_before, 'lock_owner', ch.owner,
                                         'lock_locked_at', ch.locked_at, 'lock_expires_at', ch.expires_at),
            'after', jsonb_build_object('status', ch.status_after, 'lock_owner', NULL,
                                        'lock_locked_at', NULL, 'lock_expires_at', NULL))
            ORDER BY ch.anonymous_id), '[]')
          FROM (SELECT * FROM changes ORDER BY anonymous_id LIMIT %(actions_limit)s) ch) AS actions,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', k.copy_id, 'anonymous_id', k.anonymous_id,
                                                     'expires_at', k.expires_at)
                                  ORDER BY k.anonymous_id), '[]') FROM kept k) AS kept,
       (SELECT count(*) FROM released) AS released,
       (SELECT count(*) FROM reconciled) AS reconciled,
       (SELECT count(*) FROM events) AS events_written,
       (SELECT count(*) FROM audit) AS audit_rows
  FROM guard g
"""


def release_statement():
    return remediation_statement(RELEASE_TEMPLATE)


def validate(params):
    copy_ids = validate_uuids(params['copy_ids'])
    require_selector({'expired': params['expired'], 'copy_ids': copy_ids},
                     'set expired=true to release every expired lock, or list copy_ids')
    if params['force'] and not copy_ids:
        raise KorrigoError("force=true releases active locks and needs explicit copy_ids; "
                           "it is refused with expired=true alone")
    if params['force'] and not params['reason']:
        raise KorrigoError("force=true needs a reason (recorded in Korrigo's audit trail)")
    check_positive_max_changes(params['max_changes'])
    if params.get('lock_age_minutes', 0) < 0 or params.get('actions_limit', 0) < 0:
        raise KorrigoError("lock_age_minutes and actions_limit must not be negative")
    return copy_ids


def release_locks(module):
    params = module.params
    copy_ids = validate(params)
    statement_params = {
        'copy_ids': copy_ids,
        'all_copies': not copy_ids,
        'include_active': bool(params['force'] and copy_ids and not params['expired']),
        'reason': params['reason'] or DEFAULT_REASON,
        'max_changes': params['max_changes'],
        'actions_limit': params['actions_limit'],
        'event_action': 'UNLOCK',
        'audit_action': 'korrigo_ops.copylock.release',
    }
    with Remediation(params, 'copylock', module.check_mode, tables=('grading_copylock', 'exams_copy')) as rem:
        row = rem.fetchone(release_statement(), rem.trail_params(**statement_params))
        check_statement_guards(row, params['max_changes'])
    result = remediation_result(module, row['released'], row['actions'], rem.rules['name'], 'locks', 'copy_id',
                                kept=jsonable(row['kept']), reconciled=row['reconciled'],
                                events_written=row['events_written'], audit_rows=row['audit_rows'])
    if params['gather_after']:
        facts_params = dict(FACT_DEFAULTS, list_limit=params['actions_limit'],
                            lock_age_minutes=params['lock_age_minutes'])
        result['korrigo_after'] = read_facts(dict(params, remediation_user=None, **facts_params),
                                             params['gather_after'], 'korrigo.ops:copylock')
    return result


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        expired=dict(type='bool', default=False),
        copy_ids=dict(type='list', elements='str', default=[]),
        force=dict(type='bool', default=False),
        reason=dict(type='str'),
        actions_limit=dict(type='int', default=1000),
        gather_after=dict(type='list', elements='str', default=[], choices=['copies', 'locks']),
        lock_age_minutes=dict(type='int', default=FACT_DEFAULTS['lock_age_minutes']),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: release_locks(module))


if __name__ == '__main__':
    main()
