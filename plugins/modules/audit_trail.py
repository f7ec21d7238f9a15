#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: audit_trail
short_description: Check each Korrigo copy's grading-event trail against its status (scenario 5), and note the gaps
version_added: 0.2.0
description:
  - One set-based statement checks every copy's C(grading_gradingevent) trail with the rules of the Korrigo version
    detected from the schema. Gap kinds are
    C(missing_import) (a copy created by C(import_pdf) has an C(IMPORT) event),
    C(missing_validate) (a copy past C(STAGING) whose creation path goes through a person's validation has a
    C(VALIDATE) event - see below),
    C(missing_finalize) (a C(GRADED) copy has a successful C(FINALIZE) event),
    C(duplicate_finalize) (two or more successful C(FINALIZE) events - the real idempotency bug),
    and on the lock-workflow version 8f16b75 only
    C(missing_lock) (a C(LOCKED) or C(GRADED) copy has a C(LOCK) event - only acquire_lock sets C(LOCKED) and
    finalize required a valid lock there),
    C(unpaired_lock) (a C(LOCK) followed by another C(LOCK), or left open while no lock row exists) and
    C(unpaired_unlock) (an C(UNLOCK) without the C(LOCK) it closes). On HEAD no C(LOCK) event is ever written, so
    missing or unpaired C(LOCK)/C(UNLOCK) events are not gaps there.
  - Which events a copy must have depends on how it came into being, read from what each creation path leaves
    behind (C(plugins/module_utils/creation.py), the one home of that rule; Korrigo keeps no column for it) and
    returned per copy as C(creation_path). C(import) (C(GradingService.import_pdf), C(pdf_source) under
    C(copies/source/) or an C(IMPORT) event) must have C(IMPORT), and C(VALIDATE) once past C(STAGING).
    C(batch) (the default exam upload, split into booklets) has no C(IMPORT); on HEAD it is auto-validated without
    any event, on 8f16b75 a person validates it (C(VALIDATE) expected past C(STAGING)).
    C(individual) (HEAD C(upload-individual-pdfs), C(pdf_source) under C(exams/individual/)) has no C(IMPORT) and
    normally stays in C(STAGING); past it, C(VALIDATE) is expected (validate_copy is the only way out).
    C(merge) (C(merge-booklets), past C(STAGING) and never validated) has neither. Each gap carries the rule it broke.
  - What the playbook's duplicate query over-reports is told apart and counted, not reported as gaps. Failed
    finalization attempts (C(FINALIZE) with C(metadata.success=false)) legitimately repeat; repeated
    C(CREATE_ANN)/C(UPDATE_ANN)/C(DELETE_ANN) events are normal; and a C(GRADED) copy whose only C(FINALIZE) event
    by some user is a failure is explained by Korrigo's C(get_or_create(copy, FINALIZE, actor)), which reuses that
    failure event when the same user's retry succeeds.
  - It never invents history. By default it only reports. With O(record_notes), it writes one C(core_auditlog) row
    per gap (action C(korrigo_ops.audit_trail.gap), the gap kind and what is missing in the metadata,
    O(remediation_user) as actor, the creation path and the rule in the metadata too), once per copy and kind -
    never a grading event.
  - The report-only mode runs in a read-only transaction, so a read-only database role is enough.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  record_notes:
    description:
      - Write one C(core_auditlog) remediation note per gap not noted yet (guarded by O(max_changes), audited,
        check mode rolls it back). Without it the module only reports and needs no write privilege.
    type: bool
    default: false
  reason:
    description:
      - Text recorded in each note.
    type: str
    default: audit trail gap found by korrigo.ops (incident playbook scenario 5); history not rewritten
  list_limit:
    description:
      - Most gaps listed in RV(gaps); counts always cover every copy.
    type: int
    default: 500
  count_repeats:
    description:
      - Also count, under RV(normal_repeats), what only looks like duplicates among every event - copies with
        repeated annotation events by one teacher, and the groups the playbook's duplicate query would flag.
      - That needs every event grouped by (copy, action, actor), the one full aggregation of the check (a few
        seconds at a district's millions of events). The gaps and the other counts need only the IMPORT, VALIDATE,
        LOCK and FINALIZE events. The triage role turns it off; the two counts are then null.
    type: bool
    default: true
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.attributes_remediation
seealso:
  - module: korrigo.ops.korrigo_facts
'''

EXAMPLES = r'''
- name: Report the copies whose trail does not match their status
  korrigo.ops.audit_trail:
    login_host: 127.0.0.1
    login_user: korrigo_readonly
    login_password: "{{ korrigo_readonly_password }}"
  register: trail

- name: Record a remediation note per gap (never a grading event)
  korrigo.ops.audit_trail:
    database_url: "{{ korrigo_database_url }}"
    record_notes: true
    max_changes: 50
'''

RETURN = r'''
copies_checked:
  description: Copies whose trail was checked.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
copies_with_gaps:
  description: Copies with at least one gap.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
copies_by_creation_path:
  description: Every checked copy counted by how it came into being (every path present, 0 when none).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: dict
  sample: {batch: 412, individual: 3, import: 25, merge: 2}
gap_counts:
  description: Number of gaps per kind (every kind present, 0 when none).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: dict
  sample: {missing_import: 1, missing_validate: 1, missing_finalize: 1, duplicate_finalize: 1, missing_lock: 0,
           unpaired_lock: 0, unpaired_unlock: 0}
gaps:
  description:
    - One entry per gap, at most O(list_limit), by anonymous id then kind.
    - C(creation_path) is how the copy came into being (C(batch), C(individual), C(import) or C(merge)), C(rule)
      the rule the gap broke, C(missing) what is missing.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - {copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e, anonymous_id: IMPORT-0B8F3C52, status: READY,
       creation_path: import, kind: missing_import, missing: IMPORT event,
       rule: import_pdf copies have an IMPORT event, noted: false}
normal_repeats:
  description:
    - What looks like duplicates but is Korrigo's normal behaviour, counted per kind.
    - C(copies_with_repeated_annotation_events) and C(playbook_duplicate_groups) are null without O(count_repeats).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: dict
  sample: {copies_with_failed_attempts: 2, success_hidden_by_get_or_create: 1, copies_with_repeated_annotation_events: 1,
           playbook_duplicate_groups: 5}
count:
  description: Notes written (or that would be in check mode); 0 without O(record_notes).
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
actions:
  description: One entry per note written.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
korrigo_version:
  description: Korrigo version detected from the schema, whose rules were applied.
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

from ansible_collections.korrigo.ops.plugins.module_utils.audit_rules import (
    AUDIT_ACTION, AUDIT_TABLES, EV_SUMMARY, GAPS_CTES, SUMMARY_COLUMNS, WORK_MEM, report_gaps, summary, version_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    korrigo_common_argument_spec, korrigo_guard_argument_spec, read_only_session, sql,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, audit_cte, check_positive_max_changes, check_statement_guards, remediation_result,
)

RECORD_TEMPLATE = WORK_MEM + "WITH " + GAPS_CTES + """, selected AS MATERIALIZED (
    SELECT * FROM noted WHERE NOT noted
), guard AS (
    SELECT (SELECT count(*) FROM selected) AS n
), changes AS MATERIALIZED (
    SELECT s.*, jsonb_build_object('remediation', 'korrigo.ops.audit_trail', 'gap', s.kind, 'missing', s.missing,
                                   'rule', s.rule, 'creation_path', s.creation_path,
                                   'status', s.status, 'anonymous_id', s.anonymous_id,
                                   'korrigo_version', %(version)s::text, 'reason', %(reason)s::text,
                                   'run_by', %(run_by)s::text) AS audit_metadata
      FROM selected s, guard g WHERE g.n <= %(max_changes)s
), {audit}
SELECT g.n AS selected, (SELECT count(*) FROM audit) AS audit_rows,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', 'note_gap', 'gap', ch.kind, 'copy_id', ch.copy_id, 'anonymous_id', ch.anonymous_id,
            'creation_path', ch.creation_path, 'rule', ch.rule,
            'note_key', ch.copy_id || ':' || ch.kind,
            'before', jsonb_build_object('status', ch.status, 'noted', false),
            'after', jsonb_build_object('status', ch.status, 'noted', true)) ORDER BY ch.anonymous_id, ch.kind), '[]')
          FROM (SELECT * FROM changes ORDER BY anonymous_id, kind LIMIT %(actions_limit)s) ch) AS actions,
""" + SUMMARY_COLUMNS + """
  FROM guard g, """ + EV_SUMMARY + """ s
"""


def report(module, statement_params):
    failure = 'checking the audit trail failed'
    with read_only_session(module.params, 'korrigo.ops:audit_trail', failure, tables=AUDIT_TABLES) as (cursor, rules):
        found = report_gaps(cursor, rules, module.params, 'korrigo.ops:audit_trail', failure,
                            statement_params['list_limit'], statement_params['count_repeats'])
    result = {'changed': False, 'count': 0, 'actions': [], 'actions_truncated': False,
              'check_mode': module.check_mode}
    result.update(found)
    return result


def record(module, statement_params):
    params = module.params
    check_positive_max_changes(params['max_changes'])
    statement = sql.SQL(RECORD_TEMPLATE).format(audit=audit_cte('audit', 'changes', 'audit_action'))
    with Remediation(params, 'audit_trail', module.check_mode, tables=AUDIT_TABLES) as rem:
        statement_params.update(lock_workflow=rem.rules['lock_workflow'], version=rem.rules['name'],
                                reason=params['reason'], run_by=params['remediation_user'],
                                max_changes=params['max_changes'], actions_limit=params['list_limit'])
        statement_params.update(version_params(rem.rules['name']))
        row = rem.fetchone(statement, rem.trail_params(**statement_params))
        check_statement_guards(row, params['max_changes'])
    result = remediation_result(module, row['audit_rows'], row['actions'], rem.rules['name'], 'notes', 'note_key',
                                audit_rows=row['audit_rows'])
    result.update(summary(row, rem.rules['name']))
    if row['audit_rows']:  # the gaps listed are those before this run; they are noted now (or would be)
        for gap in result['gaps']:
            gap['noted'] = True
    return result


def check_trail(module):
    if module.params['list_limit'] < 0:
        raise KorrigoError("list_limit must not be negative (got %d)" % module.params['list_limit'])
    statement_params = {'audit_action': AUDIT_ACTION, 'list_limit': module.params['list_limit'],
                        'only_copy_ids': None, 'count_repeats': module.params['count_repeats']}
    if module.params['record_notes']:
        return record(module, statement_params)
    return report(module, statement_params)


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        record_notes=dict(type='bool', default=False),
        reason=dict(type='str',
                    default='audit trail gap found by korrigo.ops (incident playbook scenario 5); history not rewritten'),
        list_limit=dict(type='int', default=500),
        count_repeats=dict(type='bool', default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: check_trail(module))


if __name__ == '__main__':
    main()
