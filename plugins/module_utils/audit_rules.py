# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit-trail rules of scenario 5, in one place: which events a copy must have for its status, its creation
path and the Korrigo version, and what is normal although it looks odd. audit_trail checks every copy with them,
copy_dossier one copy. ``%(only_copy_ids)s`` is NULL for every copy, or the copies to check (read by index)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.korrigo.ops.plugins.module_utils.copy_rules import ONLY_COPIES
from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    creation_path_sql, expectation_params, expectation_rules,
)

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

# One pass over the events, grouped by (copy, action, actor): every per-copy count, the single failures, the
# repeated annotation events and the playbook's duplicate groups come from it (no index on action: one sequential
# scan of grading_gradingevent instead of one per question). Then the per-copy counts, joined to every copy by hash
# (the import count decides the creation path's "has an IMPORT event" without a second look at the events), then the
# lock/unlock sequence (8f16b75 only), then one row per (copy, gap kind). grp groups by action first: a leading
# copy_id would let the planner walk the copy_id index and fetch every event at random (the table is in time order).
# With only_copy_ids the events are read by that index either way. The failure flag is taken before grouping
# (OFFSET 0) so the rows grouped are narrow (no metadata): a third of the sort or hash memory.
# A failure FINALIZE carries metadata.success=false; any other FINALIZE records a success.
GAPS_CTES = """
grp AS MATERIALIZED (
    SELECT x.copy_id, x.action, x.actor_id, count(*) AS n, count(*) FILTER (WHERE x.failure) AS failed
      FROM (SELECT x.copy_id, x.action, x.actor_id, x.metadata -> 'success' = 'false'::jsonb AS failure
              FROM grading_gradingevent x
             WHERE """ + ONLY_EVENTS + """ OFFSET 0) x
     GROUP BY x.action, x.actor_id, x.copy_id
), per_copy AS (
    SELECT g.copy_id,
           sum(g.n) FILTER (WHERE g.action = 'IMPORT') AS imports,
           sum(g.n) FILTER (WHERE g.action = 'VALIDATE') AS validates,
           sum(g.n) FILTER (WHERE g.action = 'LOCK') AS locks,
           sum(g.n - g.failed) FILTER (WHERE g.action = 'FINALIZE') AS finalize_ok,
           sum(g.failed) FILTER (WHERE g.action = 'FINALIZE') AS finalize_failed
      FROM grp g
     WHERE g.action IN ('IMPORT', 'VALIDATE', 'LOCK', 'FINALIZE')
     GROUP BY g.copy_id
), ev AS MATERIALIZED (
    SELECT c.id AS copy_id, c.anonymous_id, c.status,
           """ + creation_path_sql('coalesce(k.imports, 0) > 0') + """ AS creation_path,
           coalesce(k.imports, 0)::bigint AS imports, coalesce(k.validates, 0)::bigint AS validates,
           coalesce(k.locks, 0)::bigint AS locks, coalesce(k.finalize_ok, 0)::bigint AS finalize_ok,
           coalesce(k.finalize_failed, 0)::bigint AS finalize_failed
      FROM exams_copy c LEFT JOIN per_copy k ON k.copy_id = c.id
     WHERE """ + ONLY_COPIES + """
), single_failures AS (
    SELECT g.copy_id FROM grp g WHERE g.action = 'FINALIZE' AND g.failed = 1
), annotation_repeats AS (
    SELECT DISTINCT g.copy_id FROM grp g
     WHERE g.action IN ('CREATE_ANN', 'UPDATE_ANN', 'DELETE_ANN') AND g.n > 1
), seq AS (
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
