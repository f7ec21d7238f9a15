#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: annotation_bounds
short_description: Bring Korrigo annotations whose box leaves the page back inside it
version_added: 0.1.0
description:
  - 'Finds C(grading_annotation) rows whose box leaves the page (C(x + w > 1), C(y + h > 1), negative or NaN
    values), the cause of C(flatten_copy failed: fitz error) finalization failures, and fixes them in one
    statement that re-checks the bounds in the database.'
  - V(clamp) (the default) keeps the annotation, its content, type and score; it keeps the box's size where
    the page allows and moves the box inside the page (a negative size is read as a box drawn backwards; a NaN
    size becomes 0.05). Version and C(updated_at) move on as Korrigo's ORM would.
  - V(delete) removes the annotation; the whole row is kept as a backup in the audit row's metadata.
  - Writes an C(UPDATE_ANN) or C(DELETE_ANN) grading event and a C(core_auditlog) row per annotation.
  - Annotations of GRADED copies are left alone unless O(include_graded) is set, because their final PDF shows them.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  copy_ids:
    description:
      - Copies whose out-of-bounds annotations are fixed. Unknown copies make the module fail without change.
    type: list
    elements: str
    default: []
  all_copies:
    description:
      - Fix the out-of-bounds annotations of every copy (instead of O(copy_ids)).
    type: bool
    default: false
  mode:
    description:
      - V(clamp) moves the box inside the page; V(delete) removes the annotation (backup in the audit trail).
    type: str
    default: clamp
    choices: [ clamp, delete ]
  statuses:
    description:
      - Only fix the annotations of copies in these statuses (all but C(GRADED) when empty). Prevention before a
        finalization uses V([READY, LOCKED, GRADING_FAILED]) with O(all_copies=true) - the copies whose next
        finalize would fail on an out-of-bounds box.
    type: list
    elements: str
    default: []
    choices: [ STAGING, READY, LOCKED, GRADING_IN_PROGRESS, GRADING_FAILED, GRADED ]
    version_added: 0.3.0
  include_graded:
    description:
      - Also fix annotations of GRADED copies.
    type: bool
    default: false
  actions_limit:
    description:
      - Most entries listed in RV(actions); RV(count) and the audit trail cover every row.
    type: int
    default: 1000
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.attributes_remediation
seealso:
  - module: korrigo.ops.korrigo_facts
  - module: korrigo.ops.copy_status
'''

EXAMPLES = r'''
- name: Clamp the out-of-bounds annotations of the copies whose finalization failed
  korrigo.ops.annotation_bounds:
    copy_ids: "{{ ansible_facts.korrigo.annotations.out_of_bounds | map(attribute='copy_id') | unique }}"

- name: Delete them instead (each row is kept in core_auditlog)
  korrigo.ops.annotation_bounds:
    all_copies: true
    mode: delete
    max_changes: 20
'''

RETURN = r'''
count:
  description: Number of annotations fixed (or that would be fixed in check mode).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
actions:
  description: One entry per annotation, at most O(actions_limit).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - kind: clamp_annotation
      copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e
      anonymous_id: IMPORT-0B8F3C52
      annotation_id: 5259a6c1-c7a4-5401-acb6-3c68f6a070e0
      before: {x: 0.85, y: 0.2, w: 0.3, h: 0.06}
      after: {x: 0.7, y: 0.2, w: 0.3, h: 0.06}
actions_truncated:
  description: True when more annotations changed than O(actions_limit) lists.
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

from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    korrigo_common_argument_spec, korrigo_guard_argument_spec,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, check_positive_max_changes, check_statement_guards, remediation_result,
    remediation_statement, require_selector, validate_uuids,
)
from ansible_collections.korrigo.ops.plugins.module_utils.version import COPY_STATUSES
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module

# The same bounds test as korrigo_facts; NaN sorts above every number in PostgreSQL.
FIX_TEMPLATE = """
WITH {unknown_copies}, selected AS MATERIALIZED (
    SELECT a.id AS annotation_id, a.copy_id, c.anonymous_id, a.page_index, a.x, a.y, a.w, a.h,
           to_jsonb(a) AS backup
      FROM grading_annotation a JOIN exams_copy c ON c.id = a.copy_id
     WHERE (%(all_copies)s OR a.copy_id = ANY(%(copy_ids)s::uuid[]))
       AND (%(include_graded)s OR c.status <> 'GRADED')
       AND (cardinality(%(statuses)s::text[]) = 0 OR c.status = ANY(%(statuses)s::text[]))
       AND (a.x < 0 OR a.y < 0 OR a.w < 0 OR a.h < 0 OR a.x + a.w > 1 OR a.y + a.h > 1
            OR 'NaN'::float8 IN (a.x, a.y, a.w, a.h))
     ORDER BY a.id
       FOR UPDATE OF a
), sized AS (
    SELECT s.*,
           CASE WHEN s.w = 'NaN' THEN 0.05 WHEN s.w < 0 THEN least(-s.w, 1) ELSE least(s.w, 1) END AS nw,
           CASE WHEN s.h = 'NaN' THEN 0.05 WHEN s.h < 0 THEN least(-s.h, 1) ELSE least(s.h, 1) END AS nh,
           CASE WHEN s.x = 'NaN' THEN 0 WHEN s.w < 0 THEN s.x + s.w ELSE s.x END AS rx,
           CASE WHEN s.y = 'NaN' THEN 0 WHEN s.h < 0 THEN s.y + s.h ELSE s.y END AS ry
      FROM selected s
), placed AS (
    SELECT z.*, least(greatest(z.rx, 0), 1 - z.nw) AS nx, least(greatest(z.ry, 0), 1 - z.nh) AS ny FROM sized z
), clamped AS (
    -- 1 - w + w can round above 1: shave the rounding off so the fixed box passes the same test.
    SELECT p.*,
           CASE WHEN p.nx + p.nw > 1 THEN p.nw - 1e-12 ELSE p.nw END AS fw,
           CASE WHEN p.ny + p.nh > 1 THEN p.nh - 1e-12 ELSE p.nh END AS fh
      FROM placed p
), guard AS (
    SELECT (SELECT count(*) FROM selected) AS n, (SELECT count(*) FROM unknown) AS unknown_n
), changes AS MATERIALIZED (
    SELECT c.annotation_id, c.copy_id, c.anonymous_id,
           jsonb_build_object('x', c.x, 'y', c.y, 'w', c.w, 'h', c.h) AS before,
           CASE WHEN %(delete)s THEN NULL
                ELSE jsonb_build_object('x', c.nx, 'y', c.ny, 'w', c.fw, 'h', c.fh) END AS after,
           c.nx, c.ny, c.fw, c.fh,
           jsonb_build_object('annotation_id', c.annotation_id, 'page', c.page_index,
                              'remediation', 'korrigo.ops.annotation_bounds') AS event_metadata,
           jsonb_build_object('remediation', 'korrigo.ops.annotation_bounds', 'mode', %(mode)s::text,
                              'annotation_id', c.annotation_id,
                              'before', jsonb_build_object('x', c.x, 'y', c.y, 'w', c.w, 'h', c.h),
                              'after', CASE WHEN %(delete)s THEN NULL
                                            ELSE jsonb_build_object('x', c.nx, 'y', c.ny, 'w', c.fw, 'h', c.fh) END,
                              'backup', c.backup) AS audit_metadata
      FROM clamped c, guard g
     WHERE g.n <= %(max_changes)s AND g.unknown_n = 0
), clamped_rows AS (
    UPDATE grading_annotation a
       SET x = ch.nx, y = ch.ny, w = ch.fw, h = ch.fh, version = a.version + 1, updated_at = now()
      FROM changes ch
     WHERE a.id = ch.annotation_id AND NOT %(delete)s
    RETURNING a.id
), deleted_rows AS (
    DELETE FROM grading_annotation a USING changes ch WHERE a.id = ch.annotation_id AND %(delete)s RETURNING a.id
), {events}, {audit}
SELECT g.n AS selected, g.unknown_n,
       (SELECT coalesce(jsonb_agg(copy_id ORDER BY copy_id), '[]') FROM unknown) AS unknown_ids,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', %(kind)s::text, 'copy_id', ch.copy_id, 'anonymous_id', ch.anonymous_id,
            'annotation_id', ch.annotation_id, 'before', ch.before, 'after', ch.after)
            ORDER BY ch.anonymous_id, ch.annotation_id), '[]')
          FROM (SELECT * FROM changes ORDER BY anonymous_id, annotation_id LIMIT %(actions_limit)s) ch) AS actions,
       (SELECT count(*) FROM clamped_rows) + (SELECT count(*) FROM deleted_rows) AS changed_rows,
       (SELECT count(*) FROM events) AS events_written,
       (SELECT count(*) FROM audit) AS audit_rows
  FROM guard g
"""


def fix_statement():
    return remediation_statement(FIX_TEMPLATE)


def validate(params):
    copy_ids = validate_uuids(params['copy_ids'])
    require_selector({'all_copies': params['all_copies'], 'copy_ids': copy_ids},
                     'list copy_ids or set all_copies=true')
    if params['all_copies'] and copy_ids:
        raise KorrigoError("all_copies=true and copy_ids are exclusive: choose one selector")
    if 'GRADED' in params['statuses'] and not params['include_graded']:
        raise KorrigoError("statuses lists GRADED: set include_graded=true to touch finalized copies")
    check_positive_max_changes(params['max_changes'])
    return copy_ids


def fix_annotations(module):
    params = module.params
    copy_ids = validate(params)
    delete = params['mode'] == 'delete'
    statement_params = {
        'copy_ids': copy_ids,
        'all_copies': params['all_copies'],
        'include_graded': params['include_graded'],
        'statuses': params['statuses'],
        'delete': delete,
        'mode': params['mode'],
        'kind': 'delete_annotation' if delete else 'clamp_annotation',
        'max_changes': params['max_changes'],
        'actions_limit': params['actions_limit'],
        'event_action': 'DELETE_ANN' if delete else 'UPDATE_ANN',
        'audit_action': 'korrigo_ops.annotation.%s' % params['mode'],
    }
    with Remediation(params, 'annotation_bounds', module.check_mode,
                     tables=('grading_annotation', 'exams_copy')) as rem:
        row = rem.fetchone(fix_statement(), rem.trail_params(**statement_params))
        check_statement_guards(row, params['max_changes'])
    return remediation_result(module, row['changed_rows'], row['actions'], rem.rules['name'], 'annotations',
                              'annotation_id', events_written=row['events_written'], audit_rows=row['audit_rows'])


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        copy_ids=dict(type='list', elements='str', default=[]),
        all_copies=dict(type='bool', default=False),
        mode=dict(type='str', default='clamp', choices=['clamp', 'delete']),
        include_graded=dict(type='bool', default=False),
        statuses=dict(type='list', elements='str', default=[], choices=list(COPY_STATUSES)),
        actions_limit=dict(type='int', default=1000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: fix_annotations(module))


if __name__ == '__main__':
    main()
