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
  - With O(failed), the module builds the finalization remediation's whole work list itself, uncapped - every
    failing copy by the rule of C(module_utils/copy_rules) (the one M(korrigo.ops.korrigo_facts) reports), read in
    one short read-only transaction; the page images each one's finalize will flatten are checked on disk (as
    M(korrigo.ops.pdf_check) O(korrigo.ops.pdf_check#module:kind=image) does, O(parallel) at a time, confined to
    the media root) outside any transaction; the repairable copies (all page images fine, no finalize still
    running) are then made finalizable in one statement that locks and re-checks them, and their ids returned in
    RV(repairable_copy_ids) for M(korrigo.ops.annotation_bounds) and M(korrigo.ops.celery_task). O(max_changes)
    then bounds the whole work list (every repairable copy, changed here or not), so an incident larger than it
    is refused before anything is written anywhere.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  copy_ids:
    description:
      - Copies to make finalizable; unknown copies fail the module without change.
      - One of O(copy_ids) and O(failed) is required.
    type: list
    elements: str
    default: []
  failed:
    description:
      - Select every failing copy (C(GRADING_FAILED), or C(GRADING_IN_PROGRESS) with a dead worker) by the shared
        rule, check its page images, and make the repairable ones finalizable (see the description). Exclusive with
        O(copy_ids). Needs the media root (O(media_root) or O(compose_project)).
      - The repairable copies, claimed on 8f16b75 when O(claim_for_remediation_user) is set, are returned in
        RV(repairable_copy_ids); the others in RV(needs_human).
    type: bool
    default: false
    version_added: 0.4.0
  list_limit:
    description:
      - With O(failed), most copies listed in RV(needs_human) (RV(needs_human_total) counts them all).
        RV(repairable_copy_ids) is never capped.
    type: int
    default: 200
    version_added: 0.4.0
  reset_retries:
    description:
      - Also set C(grading_retries) back to 0. Korrigo's finalize never refuses because of the count, so this
        only matters for reporting. With O(failed), every repairable copy's.
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
  - korrigo.ops.korrigo.media
  - korrigo.ops.korrigo.pdf_limits
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

- name: Make every repairable failing copy finalizable (and claim it on 8f16b75); the list feeds celery_task
  korrigo.ops.copy_status:
    failed: true
    claim_for_remediation_user: true
    media_root: /opt/korrigo/media
    max_changes: 3000
  register: selection

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
  description:
    - Selected copies left alone, with the reason.
    - Not returned with O(failed) (a non-empty C(skipped) would make Ansible show the task as skipped); the copies
      it leaves alone are in RV(needs_human), or already finalizable and in RV(repairable_copy_ids).
  returned: success without O(failed), unless another run held the advisory lock
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
repairable_copy_ids:
  description:
    - With O(failed), every repairable copy (page images fine, no finalize still running, still failing when it was
      locked), sorted; the list to re-finalize. Never capped.
  returned: with O(failed)
  type: list
  elements: str
out_of_bounds_copy_ids:
  description: With O(failed), the repairable copies whose finalize fails on an out-of-bounds annotation.
  returned: with O(failed)
  type: list
  elements: str
worker_died_copy_ids:
  description: With O(failed), the repairable copies whose worker died inside finalize.
  returned: with O(failed)
  type: list
  elements: str
needs_human:
  description:
    - With O(failed), failing copies this module cannot repair, at most O(list_limit) - page images missing,
      unreadable or outside the media root (C(pages_verdict), C(pages_problems)), or a finalize still running
      (C(cause=in_progress)).
  returned: with O(failed)
  type: list
  elements: dict
needs_human_total:
  description: With O(failed), how many failing copies need a human (RV(needs_human) lists at most O(list_limit)).
  returned: with O(failed)
  type: int
failing_total:
  description: With O(failed), how many failing copies were found.
  returned: with O(failed)
  type: int
page_verdicts:
  description: With O(failed), how many page images got each verdict.
  returned: with O(failed)
  type: dict
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

from ansible_collections.korrigo.ops.plugins.module_utils import copy_rules
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    jsonable, korrigo_common_argument_spec, korrigo_guard_argument_spec, read_only_session,
)
from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    korrigo_media_argument_spec, media_root_from_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.pdf import (
    check_files, limits_from_params, pdf_limits_argument_spec, summarize,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, check_max_changes, check_positive_max_changes, check_statement_guards, remediation_result,
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
    -- With failed=true the whole work list counts against max_changes, changed here or not.
    SELECT CASE WHEN %(count_all)s THEN (SELECT count(*) FROM claimed WHERE status_after IS NOT NULL)
                ELSE (SELECT count(*) FROM selected) END AS n,
           (SELECT count(*) FROM unknown) AS unknown_n
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
       (SELECT coalesce(jsonb_agg(d.copy_id::text ORDER BY d.copy_id), '[]')
          FROM claimed d WHERE d.status_after IS NOT NULL) AS eligible_ids,
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
    require_selector({'copy_ids': copy_ids, 'failed': params['failed']},
                     'list the copies to make finalizable, or set failed=true for every failing copy')
    if params['failed'] and copy_ids:
        raise KorrigoError("failed=true and copy_ids are exclusive: choose one selector")
    check_positive_max_changes(params['max_changes'])
    if params['stale_after_minutes'] < 1:
        raise KorrigoError("stale_after_minutes must be at least 1 (a worker may still be finalizing)")
    if params['list_limit'] < 0 or params['actions_limit'] < 0:
        raise KorrigoError("list_limit and actions_limit must not be negative")
    return copy_ids


def transition(module, rem, copy_ids, count_all):
    params = module.params
    statement_params = {
        'copy_ids': copy_ids,
        'reset_retries': params['reset_retries'],
        'stale_after': params['stale_after_minutes'],
        'in_progress_target': in_progress_target(rem.rules),
        'claim': params['claim_for_remediation_user'] and rem.rules['lock_workflow'],
        'count_all': count_all,
        'max_changes': params['max_changes'],
        'actions_limit': params['actions_limit'],
        'audit_action': 'korrigo_ops.copy_status.make_finalizable',
    }
    row = rem.fetchone(transition_statement(), rem.trail_params(**statement_params))
    check_statement_guards(row, params['max_changes'])
    return row


def make_finalizable(module):
    params = module.params
    copy_ids = validate(params)
    if params['failed']:
        return repair_failing(module)
    with Remediation(params, 'copy_status', module.check_mode, tables=('exams_copy',)) as rem:
        row = transition(module, rem, copy_ids, count_all=False)
    return remediation_result(module, row['updated_rows'], row['actions'], rem.rules['name'], 'copies', 'copy_id',
                              skipped=jsonable(row['skipped']), audit_rows=row['audit_rows'],
                              finalize_accepts=rem.rules['finalize_accepts'])


def select_failing(params):
    """Every failing copy by copy_rules' predicate, in one short read-only transaction (nothing locked)."""
    with read_only_session(params, 'korrigo.ops:copy_status', 'reading the failing copies failed',
                           tables=('exams_copy',)) as (cursor, rules):
        cursor.execute(copy_rules.failing_copies_sql(),
                       {'only_copy_ids': None, 'stale_after': params['stale_after_minutes']})
        return jsonable(cursor.fetchall()), rules


def repair_failing(module):
    """failed=true: the whole work list, its page images checked outside any transaction, then one statement."""
    params = module.params
    limits = limits_from_params(params)
    root = media_root_from_params(params)
    copies, rules = select_failing(params)
    paths = sorted(set(path for copy in copies for path in copy.get('pages_images') or []))
    files = check_files(root, paths, limits, parallel=params['parallel'], kind='image', batched=True)
    decision = copy_rules.repair_decision(copies, dict(zip(paths, files)))
    needs_human = decision['bad_pages'] + [c for c in decision['still_running'] if c['pages_verdict'] == 'ok']
    needs_human.sort(key=lambda c: c.get('anonymous_id') or '')
    extra = {
        'failing_total': len(copies),
        'needs_human': needs_human[:params['list_limit']],
        'needs_human_total': len(needs_human),
        'page_verdicts': summarize(files),
        'media_root': root,
    }
    wanted = decision['refinalize_copy_ids']
    if not wanted:
        return remediation_result(module, 0, [], rules['name'], 'copies', 'copy_id', audit_rows=0,
                                  finalize_accepts=rules['finalize_accepts'], repairable_copy_ids=[],
                                  out_of_bounds_copy_ids=[], worker_died_copy_ids=[], **extra)
    # The whole work list against max_changes before anything is written (the statement checks it again).
    check_max_changes(len(wanted), params['max_changes'])
    with Remediation(params, 'copy_status', module.check_mode, tables=('exams_copy',)) as rem:
        row = transition(module, rem, validate_uuids(wanted), count_all=True)
    eligible = set(row['eligible_ids'])
    return remediation_result(
        module, row['updated_rows'], row['actions'], rem.rules['name'], 'copies', 'copy_id',
        audit_rows=row['audit_rows'], finalize_accepts=rem.rules['finalize_accepts'],
        repairable_copy_ids=sorted(eligible),
        out_of_bounds_copy_ids=sorted(c for c in decision['out_of_bounds_copy_ids'] if c in eligible),
        worker_died_copy_ids=sorted(c for c in decision['worker_died_copy_ids'] if c in eligible), **extra)


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(korrigo_media_argument_spec())
    argument_spec.update(pdf_limits_argument_spec())
    argument_spec.update(
        copy_ids=dict(type='list', elements='str', default=[]),
        failed=dict(type='bool', default=False),
        list_limit=dict(type='int', default=200),
        reset_retries=dict(type='bool', default=False),
        claim_for_remediation_user=dict(type='bool', default=False),
        stale_after_minutes=dict(type='int', default=30),
        actions_limit=dict(type='int', default=1000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: make_finalizable(module))


if __name__ == '__main__':
    main()
