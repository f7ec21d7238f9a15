#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: copy_status
short_description: Make failed Korrigo copies finalizable again, with the running version's rules
version_added: 0.1.0
description:
  - Guarded status transitions for copies whose finalization failed, so that Korrigo's own finalize can run
    again. The target status is the one the detected Korrigo version's finalize accepts
    (HEAD - C(READY) or C(GRADING_FAILED); 8f16b75 - C(LOCKED) with a valid lock, or C(GRADING_FAILED)).
  - C(GRADING_FAILED) copies are already accepted; they only change when O(reset_retries) is set, or on 8f16b75
    with O(claim_for_remediation_user).
  - C(GRADING_IN_PROGRESS) copies (a worker died inside finalize) move to C(READY) on HEAD and to
    C(GRADING_FAILED) on 8f16b75, once their last activity (latest grading event) is older than
    O(stale_after_minutes). Younger ones are left alone, as a worker may still be finalizing them.
  - Copies in any other status are never changed and are listed in RV(skipped).
  - C(grading_error_message) is kept, and copied into the C(core_auditlog) row written per copy.
    Korrigo has no grading event for a status reset, so none is written.
  - The playbook's advice to set C(LOCKED) would leave a copy HEAD cannot finalize; this module never does.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  copy_ids:
    description:
      - Copies to make finalizable. Required and non-empty; unknown copies fail the module without change.
    type: list
    elements: str
    required: true
  reset_retries:
    description:
      - Also set C(grading_retries) back to 0. Korrigo's finalize never refuses because of the count, so this
        only matters for reporting.
    type: bool
    default: false
  claim_for_remediation_user:
    description:
      - On 8f16b75 only (no effect on HEAD), let O(remediation_user) finalize the copies - its C(finalize_copy) refuses
        (C(Lock required.)) unless the finalizing user owns a valid lock row or, with none, is C(exams_copy.locked_by).
        Sets C(locked_by_id) to the remediation user on copies without a lock row (finalize clears it again); a
        copy that holds a lock row is skipped with the reason (release the lock with M(korrigo.ops.copylock) first).
    type: bool
    default: false
    version_added: 0.3.0
  stale_after_minutes:
    description:
      - A GRADING_IN_PROGRESS copy is stale (its worker died) when its latest grading event is older than this.
    type: int
    default: 30
  actions_limit:
    description:
      - Most entries listed in RV(actions).
    type: int
    default: 1000
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.attributes_remediation
seealso:
  - module: korrigo.ops.korrigo_facts
  - module: korrigo.ops.celery_task
'''

EXAMPLES = r'''
- name: Make the copies whose worker died finalizable again
  korrigo.ops.copy_status:
    copy_ids: "{{ stale_copy_ids }}"
    stale_after_minutes: 60

- name: Reset the retry counter of failed copies as well
  korrigo.ops.copy_status:
    copy_ids: ["0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e"]
    reset_retries: true
'''

RETURN = r'''
count:
  description: Number of copies changed (or that would change in check mode).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
actions:
  description: One entry per changed copy, at most O(actions_limit).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - kind: make_finalizable
      copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e
      anonymous_id: IMPORT-0B8F3C52
      before: {status: GRADING_IN_PROGRESS, grading_retries: 1}
      after: {status: READY, grading_retries: 1}
skipped:
  description: Selected copies left alone, with the reason.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
actions_truncated:
  description: True when more copies changed than O(actions_limit) lists.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: bool
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
    jsonable, korrigo_common_argument_spec, korrigo_guard_argument_spec,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, check_positive_max_changes, check_statement_guards, remediation_result,
    remediation_statement, require_selector, validate_uuids,
)

TRANSITION_TEMPLATE = """
WITH {unknown_copies}, candidates AS MATERIALIZED (
    SELECT c.id AS copy_id, c.anonymous_id, c.status AS status_before, c.grading_retries AS retries_before,
           c.grading_error_message, c.locked_by_id AS locked_by_before,
           EXISTS (SELECT 1 FROM grading_copylock l WHERE l.copy_id = c.id) AS has_lock_row,
           (SELECT max(e."timestamp") FROM grading_gradingevent e WHERE e.copy_id = c.id) AS last_activity_at
      FROM exams_copy c
     WHERE c.id = ANY(%(copy_ids)s::uuid[])
     ORDER BY c.id
       FOR UPDATE OF c
), decided AS (
    SELECT k.*,
           CASE WHEN k.status_before = 'GRADING_FAILED' THEN 'GRADING_FAILED'
                WHEN k.status_before = 'GRADING_IN_PROGRESS'
                     AND (k.last_activity_at IS NULL
                          OR k.last_activity_at < now() - make_interval(mins => %(stale_after)s))
                THEN %(in_progress_target)s::text
           END AS status_after,
           CASE WHEN %(reset_retries)s THEN 0 ELSE k.retries_before END AS retries_after
      FROM candidates k
), claimed AS (
    -- 8f16b75's finalize wants a lock row of the finalizing user or, with none, copy.locked_by = that user.
    SELECT d.*,
           CASE WHEN %(claim)s AND d.status_after IS NOT NULL AND NOT d.has_lock_row THEN %(actor_id)s
                ELSE d.locked_by_before END AS locked_by_after
      FROM decided d
), selected AS MATERIALIZED (
    SELECT d.* FROM claimed d
     WHERE d.status_after IS NOT NULL AND NOT (%(claim)s AND d.has_lock_row)
       AND (d.status_after <> d.status_before OR d.retries_after <> d.retries_before
            OR d.locked_by_after IS DISTINCT FROM d.locked_by_before)
), guard AS (
    SELECT (SELECT count(*) FROM selected) AS n, (SELECT count(*) FROM unknown) AS unknown_n
), changes AS MATERIALIZED (
    SELECT s.*,
           jsonb_build_object('remediation', 'korrigo.ops.copy_status',
                              'status_before', s.status_before, 'status_after', s.status_after,
                              'grading_retries_before', s.retries_before, 'grading_retries_after', s.retries_after,
                              'locked_by_before', s.locked_by_before, 'locked_by_after', s.locked_by_after,
                              'grading_error_message', s.grading_error_message,
                              'last_activity_at', s.last_activity_at) AS audit_metadata
      FROM selected s, guard g
     WHERE g.n <= %(max_changes)s AND g.unknown_n = 0
), updated AS (
    UPDATE exams_copy c SET status = ch.status_after, grading_retries = ch.retries_after,
                            locked_by_id = ch.locked_by_after
      FROM changes ch WHERE c.id = ch.copy_id
    RETURNING c.id
), {audit}
SELECT g.n AS selected, g.unknown_n,
       (SELECT coalesce(jsonb_agg(copy_id ORDER BY copy_id), '[]') FROM unknown) AS unknown_ids,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', 'make_finalizable', 'copy_id', ch.copy_id, 'anonymous_id', ch.anonymous_id,
            'grading_error_message', ch.grading_error_message,
            'before', jsonb_build_object('status', ch.status_before, 'grading_retries', ch.retries_before,
                                         'locked_by_id', ch.locked_by_before),
            'after', jsonb_build_object('status', ch.status_after, 'grading_retries', ch.retries_after,
                                        'locked_by_id', ch.locked_by_after))
            ORDER BY ch.anonymous_id), '[]')
          FROM (SELECT * FROM changes ORDER BY anonymous_id LIMIT %(actions_limit)s) ch) AS actions,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'copy_id', d.copy_id, 'anonymous_id', d.anonymous_id, 'status', d.status_before,
            'reason', CASE WHEN d.status_before = 'GRADING_IN_PROGRESS' AND d.status_after IS NULL
                           THEN 'finalize may still be running (last activity too recent)'
                           WHEN d.status_after IS NULL THEN 'status not eligible'
                           WHEN %(claim)s AND d.has_lock_row
                           THEN 'holds a copy lock: release it first (korrigo.ops.copylock), then re-run'
                           ELSE 'already finalizable' END)
            ORDER BY d.anonymous_id), '[]')
          FROM claimed d WHERE d.copy_id NOT IN (SELECT copy_id FROM selected)) AS skipped,
       (SELECT count(*) FROM updated) AS updated_rows,
       (SELECT count(*) FROM audit) AS audit_rows
  FROM guard g
"""


def transition_statement():
    return remediation_statement(TRANSITION_TEMPLATE)


def in_progress_target(rules):
    """Where a copy whose worker died goes: a status this version's finalize accepts without a lock."""
    accepted = [status for status in rules['finalize_accepts'] if status != 'LOCKED']
    if 'READY' in accepted:
        return 'READY'
    return accepted[0]


def validate(params):
    copy_ids = validate_uuids(params['copy_ids'])
    require_selector({'copy_ids': copy_ids}, 'list the copies to make finalizable')
    check_positive_max_changes(params['max_changes'])
    if params['stale_after_minutes'] < 1:
        raise KorrigoError("stale_after_minutes must be at least 1 (a worker may still be finalizing)")
    return copy_ids


def make_finalizable(module):
    params = module.params
    copy_ids = validate(params)
    with Remediation(params, 'copy_status', module.check_mode, tables=('exams_copy',)) as rem:
        statement_params = {
            'copy_ids': copy_ids,
            'reset_retries': params['reset_retries'],
            'stale_after': params['stale_after_minutes'],
            'in_progress_target': in_progress_target(rem.rules),
            'claim': params['claim_for_remediation_user'] and rem.rules['lock_workflow'],
            'max_changes': params['max_changes'],
            'actions_limit': params['actions_limit'],
            'audit_action': 'korrigo_ops.copy_status.make_finalizable',
        }
        row = rem.fetchone(transition_statement(), rem.trail_params(**statement_params))
        check_statement_guards(row, params['max_changes'])
    return remediation_result(module, row['updated_rows'], row['actions'], rem.rules['name'], 'copies', 'copy_id',
                              skipped=jsonable(row['skipped']), audit_rows=row['audit_rows'],
                              finalize_accepts=rem.rules['finalize_accepts'])


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        copy_ids=dict(type='list', elements='str', required=True),
        reset_retries=dict(type='bool', default=False),
        claim_for_remediation_user=dict(type='bool', default=False),
        stale_after_minutes=dict(type='int', default=30),
        actions_limit=dict(type='int', default=1000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: make_finalizable(module))


if __name__ == '__main__':
    main()
