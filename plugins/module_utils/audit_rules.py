# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit-trail rules of scenario 5, in one place: which events a copy must have for its status, its creation
path and the Korrigo version, and what is normal although it looks odd. audit_trail checks every copy with them,
copy_dossier one copy. ``%(only_copy_ids)s`` is NULL for every copy, or the copies to check (read by index)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.korrigo.ops.plugins.module_utils.copy_rules import ONLY_COPIES, finalize_failed_sql
from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    CREATION_PATHS, creation_path_sql, expectation_params, expectation_rules,
)
from ansible_collections.korrigo.ops.plugins.module_utils.database import SnapshotReader, jsonable

ONLY_EVENTS = "(%(only_copy_ids)s::uuid[] IS NULL OR x.copy_id = ANY(%(only_copy_ids)s::uuid[]))"

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

# The trail events (IMPORT, VALIDATE, LOCK, FINALIZE; a fifth of a district's events, most are annotation events)
# grouped by copy in one pass, counts only. Korrigo has no index on action: one sequential scan of
# grading_gradingevent. The failure flag is taken before grouping (OFFSET 0) so the rows grouped are narrow (no
# metadata) and the aggregation stays in one process (measured: no faster in parallel, three times the memory).
# "One actor failed exactly once" (a success get_or_create hid) matters only for a GRADED copy with failures and no
# success: looked up by index for those few. Then the per-copy counts, joined to every copy by hash (the import
# count decides the creation path's "has an IMPORT event" without a second look at the events), then the lock/unlock
# sequence (8f16b75 only), then each gap rule once, as a column of
# ``checked``, and one row per (copy, gap kind) only for the copies that have a gap.
# With %(count_repeats)s, ``grp`` groups every event by (copy, action, actor) for what only looks like duplicates
# (repeated annotation events, the playbook's duplicate groups): the one full aggregation, skipped (constant-folded
# away) without it. grp groups by action first: a leading copy_id would let the planner walk the copy_id index and
# fetch every event at random (the table is in time order). With only_copy_ids the events are read by that index.
# A failure FINALIZE carries metadata.success=false; any other FINALIZE records a success (copy_rules).
TRAIL_ACTIONS = "('IMPORT', 'VALIDATE', 'LOCK', 'FINALIZE')"
ANNOTATION_ACTIONS = "('CREATE_ANN', 'UPDATE_ANN', 'DELETE_ANN')"
GROUPED_EVENTS_SELECT = """
    SELECT x.copy_id, x.action, x.actor_id, count(*) AS n
      FROM grading_gradingevent x
     WHERE """ + ONLY_EVENTS + """
     GROUP BY x.action, x.actor_id, x.copy_id"""
GROUPED_EVENTS = "grp AS MATERIALIZED (" + GROUPED_EVENTS_SELECT + "\n)"
# Over a row ``g`` of grp: one actor did one annotation action on the copy more than once (a copy with repeated
# annotation events), and a (copy, action, actor) seen more than once (the playbook's duplicate group).
REPEATED_ANNOTATION = "g.action IN " + ANNOTATION_ACTIONS + " AND g.n > 1"
DUPLICATE_GROUP = "g.n > 1"
ANNOTATION_REPEATS = """annotation_repeats AS (
    SELECT DISTINCT g.copy_id FROM grp g WHERE """ + REPEATED_ANNOTATION + """
)"""
# The normal repeats alone (count_repeats), for a read beside the gap check in the same snapshot: the two full
# passes over the events then take the time of one on two cores. Both counts in one pass over the grouping, not a
# CTE read twice (1M copies / 5M events: 3.4 s instead of 4.5 s).
REPEATS_SQL = """SELECT count(DISTINCT g.copy_id) FILTER (WHERE """ + REPEATED_ANNOTATION + """)
           AS copies_with_repeated_annotation_events,
       count(*) FILTER (WHERE """ + DUPLICATE_GROUP + """) AS playbook_duplicate_groups
  FROM (""" + GROUPED_EVENTS_SELECT + """) g"""
GAPS_CTES = """
per_copy AS (
    SELECT x.copy_id,
           count(*) FILTER (WHERE x.action = 'IMPORT') AS imports,
           count(*) FILTER (WHERE x.action = 'VALIDATE') AS validates,
           count(*) FILTER (WHERE x.action = 'LOCK') AS locks,
           count(*) FILTER (WHERE x.action = 'FINALIZE' AND NOT x.failure) AS finalize_ok,
           count(*) FILTER (WHERE x.action = 'FINALIZE' AND x.failure) AS finalize_failed
      FROM (SELECT x.copy_id, x.action, coalesce(""" + finalize_failed_sql('x') + """, false) AS failure
              FROM grading_gradingevent x
             WHERE x.action IN """ + TRAIL_ACTIONS + """ AND """ + ONLY_EVENTS + """ OFFSET 0) x
     GROUP BY x.copy_id
), """ + GROUPED_EVENTS + """, ev AS MATERIALIZED (
    SELECT c.id AS copy_id, c.anonymous_id, c.status,
           """ + creation_path_sql('coalesce(k.imports, 0) > 0') + """ AS creation_path,
           coalesce(k.imports, 0)::bigint AS imports, coalesce(k.validates, 0)::bigint AS validates,
           coalesce(k.locks, 0)::bigint AS locks, coalesce(k.finalize_ok, 0)::bigint AS finalize_ok,
           coalesce(k.finalize_failed, 0)::bigint AS finalize_failed,
           CASE WHEN c.status = 'GRADED' AND k.finalize_ok = 0 AND k.finalize_failed > 0
                THEN EXISTS (SELECT 1 FROM grading_gradingevent f
                              WHERE f.copy_id = c.id AND f.action = 'FINALIZE' AND """ + finalize_failed_sql('f') + """
                              GROUP BY f.actor_id HAVING count(*) = 1)
                ELSE false END AS single_failure
      FROM exams_copy c LEFT JOIN per_copy k ON k.copy_id = c.id
     WHERE """ + ONLY_COPIES + """
), """ + ANNOTATION_REPEATS + """, seq AS (
    SELECT e.copy_id, e.action,
           lead(e.action) OVER w AS next_action, lag(e.action) OVER w AS prev_action
      FROM grading_gradingevent e
     WHERE %(lock_workflow)s AND e.action IN ('LOCK', 'UNLOCK', 'FINALIZE')
       AND """ + ONLY_EVENTS.replace("x.", "e.") + """
    WINDOW w AS (PARTITION BY e.copy_id ORDER BY e."timestamp", e.id)
), lock_issues AS (
    SELECT s.copy_id,
           count(*) FILTER (WHERE s.action = 'LOCK' AND (s.next_action = 'LOCK' OR (s.next_action IS NULL
                   AND NOT EXISTS (SELECT 1 FROM grading_copylock l WHERE l.copy_id = s.copy_id))))
               AS unpaired_locks,
           count(*) FILTER (WHERE s.action = 'UNLOCK' AND s.prev_action IS DISTINCT FROM 'LOCK') AS unpaired_unlocks
      FROM seq s GROUP BY s.copy_id
), checked AS (
    SELECT ev.copy_id, ev.anonymous_id, ev.status, ev.creation_path,
           ev.creation_path = ANY(%(import_expected_paths)s::text[]) AND ev.imports = 0 AS missing_import,
           ev.status IN ('READY', 'LOCKED', 'GRADING_IN_PROGRESS', 'GRADING_FAILED', 'GRADED')
               AND ev.creation_path = ANY(%(validate_expected_paths)s::text[]) AND ev.validates = 0
               AS missing_validate,
           ev.status = 'GRADED' AND ev.finalize_ok = 0 AND NOT ev.single_failure AS missing_finalize,
           ev.finalize_ok > 1 AS duplicate_finalize,
           %(lock_workflow)s AND ev.status IN ('LOCKED', 'GRADED') AND ev.locks = 0 AS missing_lock,
           coalesce(li.unpaired_locks, 0) > 0 AS unpaired_lock,
           coalesce(li.unpaired_unlocks, 0) > 0 AS unpaired_unlock
      FROM ev LEFT JOIN lock_issues li ON li.copy_id = ev.copy_id
), gaps AS MATERIALIZED (
    SELECT c.copy_id, c.anonymous_id, c.status, c.creation_path, g.kind, g.missing,
           coalesce(%(gap_rules)s::jsonb ->> (g.kind || ':' || c.creation_path), %(gap_rules)s::jsonb ->> g.kind)
               AS rule
      FROM (SELECT * FROM checked c
             WHERE c.missing_import OR c.missing_validate OR c.missing_finalize OR c.duplicate_finalize
                OR c.missing_lock OR c.unpaired_lock OR c.unpaired_unlock) c
     CROSS JOIN LATERAL (VALUES
        ('missing_import', 'IMPORT event', c.missing_import),
        ('missing_validate', 'VALIDATE event', c.missing_validate),
        ('missing_finalize', 'successful FINALIZE event', c.missing_finalize),
        ('duplicate_finalize', 'nothing: more than one successful FINALIZE event', c.duplicate_finalize),
        ('missing_lock', 'LOCK event', c.missing_lock),
        ('unpaired_lock', 'UNLOCK event after a LOCK', c.unpaired_lock),
        ('unpaired_unlock', 'LOCK event before an UNLOCK', c.unpaired_unlock)
     ) AS g(kind, missing, hit)
     WHERE g.hit
), noted AS MATERIALIZED (
    SELECT g.*, EXISTS (SELECT 1 FROM core_auditlog a
                         WHERE a.action = %(audit_action)s AND a.resource_type = 'Copy'
                           AND a.resource_id = g.copy_id::text AND a.metadata ->> 'gap' = g.kind) AS noted
      FROM gaps g
)"""


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


GAPS_OF_COPIES_SQL = "WITH " + GAPS_CTES + """
SELECT copy_id::text AS copy_id, kind, missing, rule, creation_path, noted FROM noted ORDER BY copy_id, kind"""


def copy_gaps(cursor, rules, copy_ids):
    """{copy id: [gap]} for ``copy_ids`` by the same rules as the whole-database check."""
    params = version_params(rules['name'])
    params.update(lock_workflow=rules['lock_workflow'], audit_action=AUDIT_ACTION, only_copy_ids=list(copy_ids))
    cursor.execute(GAPS_OF_COPIES_SQL, params)
    out = {}
    for row in cursor.fetchall():
        out.setdefault(row['copy_id'], []).append(dict(row))
    return out


# What the audit statements read (and, recording notes, write): named when a lock wait gives up.
AUDIT_TABLES = ('core_auditlog', 'grading_gradingevent', 'exams_copy', 'grading_copylock')

# Every per-copy count of the summary in one pass over ev (the creation paths are constants of module_utils/creation).
EV_SUMMARY = "(SELECT count(*) AS copies, jsonb_build_object(" + ", ".join(
    "'%s', count(*) FILTER (WHERE creation_path = '%s')" % (path, path) for path in CREATION_PATHS) + """) AS by_path,
           count(*) FILTER (WHERE finalize_failed > 0) AS failed_attempts,
           count(*) FILTER (WHERE status = 'GRADED' AND finalize_ok = 0 AND single_failure) AS success_hidden
      FROM ev)"""

SUMMARY_COLUMNS = """
       s.copies AS copies_checked,
       (SELECT count(DISTINCT copy_id) FROM gaps) AS copies_with_gaps,
       s.by_path AS copies_by_creation_path,
       (SELECT coalesce(jsonb_object_agg(kind, n), jsonb_build_object()) FROM (SELECT kind, count(*) AS n FROM gaps GROUP BY kind) k)
           AS gap_counts,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', x.copy_id, 'anonymous_id', x.anonymous_id,
                                                     'status', x.status, 'creation_path', x.creation_path,
                                                     'kind', x.kind, 'missing', x.missing, 'rule', x.rule,
                                                     'noted', x.noted) ORDER BY x.anonymous_id, x.kind), '[]')
          FROM (SELECT * FROM noted ORDER BY anonymous_id, kind LIMIT %(list_limit)s) x) AS gaps,
       jsonb_build_object(
           'copies_with_failed_attempts', s.failed_attempts,
           'success_hidden_by_get_or_create', s.success_hidden,
           'copies_with_repeated_annotation_events',
               CASE WHEN %(count_repeats)s THEN (SELECT count(*) FROM annotation_repeats) END,
           'playbook_duplicate_groups',
               CASE WHEN %(count_repeats)s THEN (SELECT count(*) FROM grp g WHERE """ + DUPLICATE_GROUP + """) END)
           AS normal_repeats"""

# work_mem for this transaction only: the per-copy counts of the trail events (and, with count_repeats, the grouping
# of every event by action, actor and copy) stay in memory rather than spilling to disk (report and record alike).
WORK_MEM = "SET LOCAL work_mem = '64MB';\n"

REPORT_TEMPLATE = WORK_MEM + "WITH " + GAPS_CTES + "\nSELECT " + SUMMARY_COLUMNS + "\n  FROM " + EV_SUMMARY + " s"


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


def gap_report_statement(rules, list_limit):
    """(statement, parameters) of the whole-database check for ``rules``' version (the gaps; no repeat counts)."""
    statement_params = {'audit_action': AUDIT_ACTION, 'list_limit': list_limit, 'only_copy_ids': None,
                        'count_repeats': False, 'lock_workflow': rules['lock_workflow']}
    statement_params.update(version_params(rules['name']))
    return REPORT_TEMPLATE, statement_params


def report_gaps(cursor, rules, params, application_name, failure, list_limit, count_repeats):
    """The whole-database check in ``cursor``'s read-only snapshot: the summary audit_trail reports and
    korrigo_facts' ``audit`` subset holds. The repeat counts (``count_repeats``) are read beside the gap check,
    on a second connection in the same snapshot (SnapshotReader)."""
    repeats = None
    if count_repeats:
        repeats = SnapshotReader(cursor, params, application_name,
                                 [(WORK_MEM + REPEATS_SQL, {'only_copy_ids': None})], failure, tables=AUDIT_TABLES)
    try:
        cursor.execute(*gap_report_statement(rules, list_limit))
        row = cursor.fetchone()
    except BaseException:
        if repeats is not None:
            repeats.cancel()
        raise
    if repeats is not None:
        row['normal_repeats'].update(repeats.result()[0])
    return summary(row, rules['name'])
