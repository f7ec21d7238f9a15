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
  returned: success
  type: int
copies_with_gaps:
  description: Copies with at least one gap.
  returned: success
  type: int
copies_by_creation_path:
  description: Every checked copy counted by how it came into being (every path present, 0 when none).
  returned: success
  type: dict
  sample: {batch: 412, individual: 3, import: 25, merge: 2}
gap_counts:
  description: Number of gaps per kind (every kind present, 0 when none).
  returned: success
  type: dict
  sample: {missing_import: 1, missing_validate: 1, missing_finalize: 1, duplicate_finalize: 1, missing_lock: 0,
           unpaired_lock: 0, unpaired_unlock: 0}
gaps:
  description:
    - One entry per gap, at most O(list_limit), by anonymous id then kind.
    - C(creation_path) is how the copy came into being (C(batch), C(individual), C(import) or C(merge)), C(rule)
      the rule the gap broke, C(missing) what is missing.
  returned: success
  type: list
  elements: dict
  sample:
    - {copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e, anonymous_id: IMPORT-0B8F3C52, status: READY,
       creation_path: import, kind: missing_import, missing: IMPORT event,
       rule: import_pdf copies have an IMPORT event, noted: false}
normal_repeats:
  description: What looks like duplicates but is Korrigo's normal behaviour, counted per kind.
  returned: success
  type: dict
  sample: {copies_with_failed_attempts: 2, success_hidden_by_get_or_create: 1, copies_with_repeated_annotation_events: 1,
           playbook_duplicate_groups: 5}
count:
  description: Notes written (or that would be in check mode); 0 without O(record_notes).
  returned: always
  type: int
actions:
  description: One entry per note written.
  returned: always
  type: list
  elements: dict
korrigo_version:
  description: Korrigo version detected from the schema, whose rules were applied.
  returned: success
  type: str
'''

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    CREATION_PATHS, CREATION_PATH_SQL, expectation_params, expectation_rules,
)

from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    KorrigoError, connect, dict_cursor, jsonable, korrigo_common_argument_spec, korrigo_guard_argument_spec,
    psycopg2, sql,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, audit_cte, check_positive_max_changes, check_statement_guards, remediation_result, run_module,
)
from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version

GAP_KINDS = ('missing_import', 'missing_validate', 'missing_finalize', 'duplicate_finalize',
             'missing_lock', 'unpaired_lock', 'unpaired_unlock')
AUDIT_ACTION = 'korrigo_ops.audit_trail.gap'
EVENT_OF_KIND = {'missing_import': 'IMPORT', 'missing_validate': 'VALIDATE'}
# The rule each other gap kind breaks (whatever the creation path); missing_import/missing_validate take theirs
# from the creation path (module_utils/creation.py).
KIND_RULES = {
    'missing_finalize': 'a GRADED copy has a successful FINALIZE event',
    'duplicate_finalize': 'finalize records its success once (get_or_create): one successful FINALIZE event',
    'missing_lock': 'on 8f16b75 a LOCKED or GRADED copy was locked through acquire_lock (LOCK event)',
    'unpaired_lock': 'on 8f16b75 a LOCK is closed by UNLOCK, by FINALIZE (finalize deletes the lock silently) '
                     'or by a live lock row',
    'unpaired_unlock': 'on 8f16b75 an UNLOCK closes the LOCK before it',
}

# Per-copy counts, then the lock/unlock sequence (8f16b75 only), then one row per (copy, gap kind).
# A failure FINALIZE carries metadata.success=false; any other FINALIZE records a success.
GAPS_CTES = """
ev AS MATERIALIZED (
    SELECT c.id AS copy_id, c.anonymous_id, c.status, """ + CREATION_PATH_SQL + """ AS creation_path,
           count(e.id) FILTER (WHERE e.action = 'IMPORT') AS imports,
           count(e.id) FILTER (WHERE e.action = 'VALIDATE') AS validates,
           count(e.id) FILTER (WHERE e.action = 'LOCK') AS locks,
           count(e.id) FILTER (WHERE e.action = 'FINALIZE'
                                 AND e.metadata -> 'success' IS DISTINCT FROM 'false'::jsonb) AS finalize_ok,
           count(e.id) FILTER (WHERE e.action = 'FINALIZE' AND e.metadata -> 'success' = 'false'::jsonb)
               AS finalize_failed
      FROM exams_copy c LEFT JOIN grading_gradingevent e ON e.copy_id = c.id
     GROUP BY c.id
), single_failures AS (
    SELECT f.copy_id FROM grading_gradingevent f
     WHERE f.action = 'FINALIZE' AND f.metadata -> 'success' = 'false'::jsonb
     GROUP BY f.copy_id, f.actor_id HAVING count(*) = 1
), annotation_repeats AS (
    SELECT DISTINCT a.copy_id FROM grading_gradingevent a
     WHERE a.action IN ('CREATE_ANN', 'UPDATE_ANN', 'DELETE_ANN')
     GROUP BY a.copy_id, a.action, a.actor_id HAVING count(*) > 1
), seq AS (
    SELECT e.copy_id, e.action,
           lead(e.action) OVER w AS next_action, lag(e.action) OVER w AS prev_action
      FROM grading_gradingevent e
     WHERE %(lock_workflow)s AND e.action IN ('LOCK', 'UNLOCK', 'FINALIZE')
    WINDOW w AS (PARTITION BY e.copy_id ORDER BY e."timestamp", e.id)
), lock_issues AS (
    SELECT s.copy_id,
           count(*) FILTER (WHERE s.action = 'LOCK' AND (s.next_action = 'LOCK' OR (s.next_action IS NULL
                   AND NOT EXISTS (SELECT 1 FROM grading_copylock l WHERE l.copy_id = s.copy_id))))
               AS unpaired_locks,
           count(*) FILTER (WHERE s.action = 'UNLOCK' AND s.prev_action IS DISTINCT FROM 'LOCK') AS unpaired_unlocks
      FROM seq s GROUP BY s.copy_id
), gaps AS MATERIALIZED (
    SELECT ev.copy_id, ev.anonymous_id, ev.status, ev.creation_path, g.kind, g.missing,
           coalesce(%(gap_rules)s::jsonb ->> (g.kind || ':' || ev.creation_path), %(gap_rules)s::jsonb ->> g.kind)
               AS rule
      FROM ev LEFT JOIN lock_issues li ON li.copy_id = ev.copy_id
     CROSS JOIN LATERAL (VALUES
        ('missing_import', 'IMPORT event',
         ev.creation_path = ANY(%(import_expected_paths)s::text[]) AND ev.imports = 0),
        ('missing_validate', 'VALIDATE event',
         ev.status IN ('READY', 'LOCKED', 'GRADING_IN_PROGRESS', 'GRADING_FAILED', 'GRADED')
         AND ev.creation_path = ANY(%(validate_expected_paths)s::text[]) AND ev.validates = 0),
        ('missing_finalize', 'successful FINALIZE event',
         ev.status = 'GRADED' AND ev.finalize_ok = 0
         AND NOT EXISTS (SELECT 1 FROM single_failures sf WHERE sf.copy_id = ev.copy_id)),
        ('duplicate_finalize', 'nothing: more than one successful FINALIZE event', ev.finalize_ok > 1),
        ('missing_lock', 'LOCK event',
         %(lock_workflow)s AND ev.status IN ('LOCKED', 'GRADED') AND ev.locks = 0),
        ('unpaired_lock', 'UNLOCK event after a LOCK', coalesce(li.unpaired_locks, 0) > 0),
        ('unpaired_unlock', 'LOCK event before an UNLOCK', coalesce(li.unpaired_unlocks, 0) > 0)
     ) AS g(kind, missing, hit)
     WHERE g.hit
), noted AS MATERIALIZED (
    SELECT g.*, EXISTS (SELECT 1 FROM core_auditlog a
                         WHERE a.action = %(audit_action)s AND a.resource_type = 'Copy'
                           AND a.resource_id = g.copy_id::text AND a.metadata ->> 'gap' = g.kind) AS noted
      FROM gaps g
)"""

SUMMARY_COLUMNS = """
       (SELECT count(*) FROM ev) AS copies_checked,
       (SELECT count(DISTINCT copy_id) FROM gaps) AS copies_with_gaps,
       (SELECT coalesce(jsonb_object_agg(creation_path, n), jsonb_build_object())
          FROM (SELECT creation_path, count(*) AS n FROM ev GROUP BY creation_path) p) AS copies_by_creation_path,
       (SELECT coalesce(jsonb_object_agg(kind, n), jsonb_build_object()) FROM (SELECT kind, count(*) AS n FROM gaps GROUP BY kind) k)
           AS gap_counts,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', x.copy_id, 'anonymous_id', x.anonymous_id,
                                                     'status', x.status, 'creation_path', x.creation_path,
                                                     'kind', x.kind, 'missing', x.missing, 'rule', x.rule,
                                                     'noted', x.noted) ORDER BY x.anonymous_id, x.kind), '[]')
          FROM (SELECT * FROM noted ORDER BY anonymous_id, kind LIMIT %(list_limit)s) x) AS gaps,
       jsonb_build_object(
           'copies_with_failed_attempts', (SELECT count(*) FROM ev WHERE finalize_failed > 0),
           'success_hidden_by_get_or_create',
               (SELECT count(*) FROM ev WHERE status = 'GRADED' AND finalize_ok = 0
                                          AND EXISTS (SELECT 1 FROM single_failures sf WHERE sf.copy_id = ev.copy_id)),
           'copies_with_repeated_annotation_events', (SELECT count(*) FROM annotation_repeats),
           'playbook_duplicate_groups',
               (SELECT count(*) FROM (SELECT 1 FROM grading_gradingevent GROUP BY copy_id, action, actor_id
                                      HAVING count(*) > 1) d)) AS normal_repeats"""

REPORT_TEMPLATE = "WITH " + GAPS_CTES + "\nSELECT " + SUMMARY_COLUMNS

RECORD_TEMPLATE = "WITH " + GAPS_CTES + """, selected AS MATERIALIZED (
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
  FROM guard g
"""


def gap_rules(version):
    """{'<kind>:<creation path>' or '<kind>': rule text} for ``version``: the SQL looks the gap's rule up there."""
    rules = dict(KIND_RULES)
    for kind, event in EVENT_OF_KIND.items():
        for (rule_event, path), text in expectation_rules(version).items():
            if rule_event == event:
                rules['%s:%s' % (kind, path)] = text
    return rules


def version_params(version):
    """The statement parameters that depend on the Korrigo version: who must have IMPORT / VALIDATE, the rules."""
    params = dict(expectation_params(version))
    params['gap_rules'] = json.dumps(gap_rules(version), sort_keys=True)
    return params


def complete_counts(counts, keys=GAP_KINDS):
    return dict((key, int((counts or {}).get(key, 0))) for key in keys)


def summary(row, version):
    return {
        'copies_checked': row['copies_checked'],
        'copies_with_gaps': row['copies_with_gaps'],
        'gap_counts': complete_counts(row['gap_counts']),
        'copies_by_creation_path': complete_counts(row['copies_by_creation_path'], CREATION_PATHS),
        'gaps': jsonable(row['gaps']),
        'normal_repeats': row['normal_repeats'],
        'korrigo_version': version,
    }


def report(module, statement_params):
    conn = connect(module.params, 'korrigo.ops:audit_trail')
    try:
        conn.set_session(readonly=True)
        cursor = dict_cursor(conn)
        rules = detect_version(cursor)
        statement_params['lock_workflow'] = rules['lock_workflow']
        statement_params.update(version_params(rules['name']))
        cursor.execute(REPORT_TEMPLATE, statement_params)
        row = cursor.fetchone()
    except psycopg2.Error as err:
        raise KorrigoError("checking the audit trail failed: %s" % str(err).strip())
    finally:
        conn.rollback()
        conn.close()
    result = {'changed': False, 'count': 0, 'actions': [], 'actions_truncated': False,
              'check_mode': module.check_mode}
    result.update(summary(row, rules['name']))
    return result


def record(module, statement_params):
    params = module.params
    check_positive_max_changes(params['max_changes'])
    statement = sql.SQL(RECORD_TEMPLATE).format(audit=audit_cte('audit', 'changes', 'audit_action'))
    with Remediation(params, 'audit_trail', module.check_mode) as rem:
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
    statement_params = {'audit_action': AUDIT_ACTION, 'list_limit': module.params['list_limit']}
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
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: check_trail(module))


if __name__ == '__main__':
    main()
