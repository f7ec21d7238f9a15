# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Korrigo's facts (copies, stuck imports, finalizations, locks, annotations), read in one snapshot: the
korrigo_facts module, and a remediation's facts after its commit (copylock ``gather_after``), read the same way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.korrigo.ops.plugins.module_utils.audit_rules import (
    AUDIT_TABLES, gap_report_statement, summary as audit_summary,
)
from ansible_collections.korrigo.ops.plugins.module_utils.copy_rules import (
    ONLY_COPIES, OUT_OF_BOUNDS_SQL, finalizations_ctes, stuck_imports_ctes,
)
from ansible_collections.korrigo.ops.plugins.module_utils.database import SnapshotReader, jsonable, read_only_session
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import validate_uuids
from ansible_collections.korrigo.ops.plugins.module_utils.version import COPY_STATUSES

SUBSETS = ('copies', 'stuck_imports', 'finalizations', 'locks', 'annotations', 'version', 'audit')
# Asked for by name only: the audit check reads every grading event (seconds on a district), ``all`` leaves it out.
EXPLICIT_SUBSETS = ('audit',)
# The thresholds and list size of the facts when nobody says otherwise (korrigo_facts' option defaults; copylock's
# facts after its commit).
FACT_DEFAULTS = {'stuck_after_minutes': 5, 'lock_age_minutes': 60, 'stale_after_minutes': 30, 'list_limit': 200}
# korrigo_facts' own options (beside the connection's); korrigo_triage_info takes their defaults.
FACTS_ARGUMENT_SPEC = dict(
    gather_subset=dict(type='list', elements='str', default=['all'], choices=['all'] + list(SUBSETS)),
    stuck_after_minutes=dict(type='int', default=FACT_DEFAULTS['stuck_after_minutes']),
    lock_age_minutes=dict(type='int', default=FACT_DEFAULTS['lock_age_minutes']),
    list_limit=dict(type='int', default=FACT_DEFAULTS['list_limit']),
    stale_after_minutes=dict(type='int', default=FACT_DEFAULTS['stale_after_minutes']),
    remediation_user=dict(type='str'),
    watch_copy_ids=dict(type='list', elements='str', default=[]),
)

# Korrigo has no index on exams_copy.status: every copy is read for the count per status, and once more (both
# parallel scans of two narrow columns) for the id of each copy in a status a finding looks at. The findings then
# read only those copies, by primary key (``only_copy_ids``), instead of one more scan of the whole table each
# (unless they are too many: MAX_IDS_BY_KEY).
COPIES_SQL = "SELECT status, count(*) AS n FROM exams_copy GROUP BY status"
COPY_IDS_SQL = "SELECT status, id::text AS copy_id FROM exams_copy WHERE status = ANY(%(statuses)s::text[])"
# Most copy ids a finding is handed (read by primary key); above, the finding reads its status from the whole table.
MAX_IDS_BY_KEY = 20000
# The statuses each finding reads its copies from.
FINDING_STATUSES = {
    'stuck_imports': ('STAGING',),
    'finalizations': ('GRADING_FAILED', 'GRADING_IN_PROGRESS'),
    'locks': ('LOCKED',),
}

# duplicate_successes: failing copies with two successful FINALIZE events (a real duplicate, which finalize's
# get_or_create cannot get past); over every copy that is the audit trail's duplicate_finalize gap (audit_trail).
# The stuck-import and failed-finalization rules have one home, module_utils/copy_rules (copy_import and
# copy_dossier use the same CTEs); these statements only count and list what they select.
STUCK_IMPORTS_SQL = """
WITH @STUCK_CTES@
SELECT (SELECT count(*) FROM staging) AS staging_total,
       (SELECT count(*) FROM staging WHERE pages > 0) AS awaiting_validation,
       (SELECT count(*) FROM staging WHERE pages = 0) AS without_pages,
       (SELECT count(*) FROM stuck) AS stuck_total,
       (SELECT count(*) FROM stuck WHERE age_unknown) AS stuck_unknown_age,
       (SELECT coalesce(jsonb_object_agg(creation_path, n), '{}')
          FROM (SELECT creation_path, count(*) AS n FROM stuck GROUP BY creation_path) p) AS stuck_by_creation_path,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.imported_at NULLS FIRST, x.anonymous_id), '[]')
          FROM (SELECT * FROM stuck ORDER BY imported_at NULLS FIRST, anonymous_id LIMIT %(limit)s) x) AS stuck
"""

FINALIZATIONS_SQL = """
WITH @FINALIZATIONS_CTES@
SELECT (SELECT count(*) FROM decided WHERE status = 'GRADING_FAILED') AS failed_total,
       (SELECT count(*) FROM decided WHERE status = 'GRADING_FAILED' AND grading_retries >= 3) AS retries_exhausted,
       (SELECT count(*) FROM decided WHERE status = 'GRADING_IN_PROGRESS') AS in_progress_total,
       (SELECT count(*) FROM decided WHERE stale) AS in_progress_stale,
       (SELECT coalesce(jsonb_object_agg(cause, n), '{}')
          FROM (SELECT cause, count(*) AS n FROM decided GROUP BY cause) by_cause) AS by_cause,
       (SELECT count(*) FROM decided WHERE success_events >= 2) AS duplicate_successes,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.anonymous_id), '[]')
          FROM (SELECT * FROM decided ORDER BY anonymous_id LIMIT %(limit)s) x) AS copies
"""


def statement(template, rules):
    """A facts statement with the shared rules (module_utils/copy_rules) filled in: constants, no input."""
    return (template.replace('@STUCK_CTES@', stuck_imports_ctes(rules))
            .replace('@FINALIZATIONS_CTES@', finalizations_ctes()))


# checked_at_epoch is the database's time of the read (its transaction's): a verification asks the next read for
# locks that expired before it, whatever the list size (lists are ordered by expiry, the oldest first).
# Counts from the lock table alone; each listed lock's copy by its primary key (OFFSET 0 keeps the lookup per lock:
# a hash join would read every copy) and its owner. Lists are ordered by expiry (or age), then copy id.
LOCKS_SQL = """
WITH locks AS MATERIALIZED (
    SELECT l.copy_id, l.owner_id, l.locked_at, l.expires_at, l.expires_at < now() AS expired
      FROM grading_copylock l
), orphans AS (
    SELECT c.id AS copy_id, c.anonymous_id, c.locked_at, l.expires_at,
           CASE WHEN l.id IS NULL THEN 'no_lock' ELSE 'expired_lock' END AS reason
      FROM exams_copy c LEFT JOIN grading_copylock l ON l.copy_id = c.id
     WHERE c.status = 'LOCKED' AND @ONLY_COPIES@ AND (l.id IS NULL OR l.expires_at < now())
)
SELECT extract(epoch FROM now())::float8 AS checked_at_epoch,
       (SELECT count(*) FROM locks) AS total,
       (SELECT count(*) FROM locks WHERE NOT expired) AS active,
       (SELECT count(*) FROM locks WHERE expired) AS expired_total,
       (SELECT count(*) FROM locks WHERE locked_at < now() - make_interval(mins => %(lock_age)s))
           AS older_than_threshold,
       (SELECT count(*) FROM orphans) AS locked_without_valid_lock,
       (SELECT count(*) FROM orphans WHERE reason = 'no_lock') AS locked_without_lock_row,
       (SELECT coalesce(jsonb_object_agg(u.username, o.n), '{}')
          FROM (SELECT owner_id, count(*) AS n FROM locks WHERE expired GROUP BY owner_id) o
          JOIN auth_user u ON u.id = o.owner_id) AS expired_by_owner,
       (SELECT coalesce(jsonb_agg(@LOCK_ROW@ ORDER BY x.expires_at, x.copy_id), '[]')
          FROM (SELECT * FROM locks WHERE expired ORDER BY expires_at, copy_id LIMIT %(limit)s) x
          @LOCK_JOINS@) AS expired,
       (SELECT coalesce(jsonb_agg(@LOCK_ROW@ ORDER BY x.locked_at, x.copy_id), '[]')
          FROM (SELECT * FROM locks WHERE locked_at < now() - make_interval(mins => %(lock_age)s)
                 ORDER BY locked_at, copy_id LIMIT %(limit)s) x
          @LOCK_JOINS@) AS old,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.anonymous_id), '[]')
          FROM (SELECT * FROM orphans ORDER BY anonymous_id LIMIT %(limit)s) x) AS locked_copies_without_valid_lock
""".replace('@ONLY_COPIES@', ONLY_COPIES).replace('@LOCK_ROW@', """jsonb_build_object(
           'copy_id', x.copy_id, 'anonymous_id', c.anonymous_id, 'copy_status', c.status, 'owner', u.username,
           'locked_at', x.locked_at, 'expires_at', x.expires_at, 'expired', x.expired,
           'expires_at_epoch', extract(epoch FROM x.expires_at)::float8,
           'expired_since_seconds', extract(epoch FROM now() - x.expires_at)::float8,
           'age_seconds', extract(epoch FROM now() - x.locked_at)::float8)""").replace('@LOCK_JOINS@', """
          CROSS JOIN LATERAL (SELECT y.anonymous_id, y.status FROM exams_copy y WHERE y.id = x.copy_id OFFSET 0) c
          LEFT JOIN auth_user u ON u.id = x.owner_id""")

# Out-of-bounds annotations (the rule of module_utils/copy_rules): counted first, one parallel read of every
# annotation; listed, with their copies, only when there are any (usually none).
ANNOTATIONS_COUNT_SQL = "SELECT count(*) AS n FROM grading_annotation a WHERE " + OUT_OF_BOUNDS_SQL
ANNOTATIONS_SQL = """
WITH bad AS (
    SELECT a.id AS annotation_id, a.copy_id, c.anonymous_id, c.status AS copy_status, a.page_index,
           a.x, a.y, a.w, a.h, a.type, a.score_delta
      FROM grading_annotation a JOIN exams_copy c ON c.id = a.copy_id
     WHERE """ + OUT_OF_BOUNDS_SQL + """
)
SELECT (SELECT count(*) FROM bad) AS out_of_bounds_total,
       (SELECT count(DISTINCT copy_id) FROM bad) AS copies_affected,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.anonymous_id, x.page_index), '[]')
          FROM (SELECT * FROM bad ORDER BY anonymous_id, page_index LIMIT %(limit)s) x) AS out_of_bounds
"""


WATCHED_SQL = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
           'copy_id', c.id, 'anonymous_id', c.anonymous_id, 'status', c.status,
           'grading_retries', c.grading_retries, 'grading_error_message', c.grading_error_message,
           'final_pdf', c.final_pdf) ORDER BY c.anonymous_id), '[]') AS copies
  FROM exams_copy c WHERE c.id = ANY(%(copy_ids)s::uuid[])
"""

REMEDIATION_USER_SQL = """
SELECT %(username)s::text AS username, (SELECT id FROM auth_user WHERE username = %(username)s) AS id
"""


def fetch(cursor, query, params=None):
    cursor.execute(query, params or {})
    return cursor.fetchone()


def scan_copies(cursor, subsets, facts):
    """``copies_by_status`` (when asked) and {finding: ids of the copies it looks at, or None: it reads its
    status from the whole table} for the findings asked."""
    findings = [finding for finding in FINDING_STATUSES if finding in subsets]
    if 'copies' not in subsets and not findings:
        return {}
    cursor.execute(COPIES_SQL)
    by_status = dict((status, 0) for status in COPY_STATUSES)
    for row in cursor.fetchall():
        by_status[row['status']] = row['n']
    if 'copies' in subsets:
        facts['copies_by_status'] = by_status
        facts['copies_total'] = sum(by_status.values())
    # Past MAX_IDS_BY_KEY copies, one more read of exams_copy costs less than sending and matching their ids.
    by_key = [f for f in findings if sum(by_status.get(s, 0) for s in FINDING_STATUSES[f]) <= MAX_IDS_BY_KEY]
    wanted = sorted(set(status for finding in by_key for status in FINDING_STATUSES[finding]))
    ids_of_status = dict((status, []) for status in wanted)
    if wanted:
        cursor.execute(COPY_IDS_SQL, {'statuses': wanted})
        for row in cursor.fetchall():
            ids_of_status[row['status']].append(row['copy_id'])
    return dict((finding, [i for status in FINDING_STATUSES[finding] for i in ids_of_status[status]]
                 if finding in by_key else None) for finding in findings)


FAILURE = 'gathering Korrigo facts failed'
AUDIT_FAILURE = 'checking the audit trail failed'


def gather(cursor, rules, subsets, params, application_name=None):
    """The facts of ``subsets``. With ``application_name`` (and connection options in ``params``) the
    finalizations and locks are read beside the stuck imports, on a second connection in the same snapshot
    (SnapshotReader): the two reads of copies by id then take the time of the longer."""
    facts = {'version': rules}
    audit = None  # the audit check (the longest read) starts first, beside everything else
    if 'audit' in subsets and application_name:
        audit = SnapshotReader(cursor, params, application_name, [gap_report_statement(rules, params['list_limit'])],
                               AUDIT_FAILURE, tables=AUDIT_TABLES)
    try:
        ids_of = scan_copies(cursor, subsets, facts)
        gather_findings(cursor, rules, subsets, params, application_name, facts, ids_of)
    except BaseException:
        if audit is not None:
            audit.cancel()
        raise
    if 'audit' in subsets:
        facts['audit'] = audit_facts(cursor, rules, params, audit)
    facts['thresholds'] = {
        'stuck_after_minutes': params['stuck_after_minutes'],
        'lock_age_minutes': params['lock_age_minutes'],
        'stale_after_minutes': params['stale_after_minutes'],
    }
    return jsonable(facts)


def audit_facts(cursor, rules, params, reader=None):
    """audit_trail's summary of the whole-database check (gaps, no repeat counts); when it fails, {'msg': why}:
    the other facts still count (triage reports the audit check as a source that did not answer)."""
    try:
        if reader is not None:
            row = reader.result()[0]
        else:
            cursor.execute(*gap_report_statement(rules, params['list_limit']))
            row = cursor.fetchone()
    except KorrigoError as err:
        return {'msg': err.msg}
    return audit_summary(row, rules['name'])


def gather_findings(cursor, rules, subsets, params, application_name, facts, ids_of):
    """Each finding asked for into ``facts``, from the copies ``ids_of`` names (or the whole table)."""
    query_params = {
        'stuck_after': params['stuck_after_minutes'],
        'lock_age': params['lock_age_minutes'],
        'stale_after': params['stale_after_minutes'],
        'limit': params['list_limit'],
        'only_copy_ids': None,
    }

    def only(finding):
        return dict(query_params, only_copy_ids=ids_of.get(finding))

    reads = []
    if 'finalizations' in subsets:
        reads.append(('finalizations', statement(FINALIZATIONS_SQL, rules), only('finalizations')))
    if 'locks' in subsets:
        reads.append(('locks', LOCKS_SQL, only('locks')))
    aside = None
    if application_name and reads and 'stuck_imports' in subsets:
        aside = SnapshotReader(cursor, params, application_name, [(sql, p) for _name, sql, p in reads], FAILURE)
    if 'stuck_imports' in subsets:
        try:
            facts['stuck_imports'] = fetch(cursor, statement(STUCK_IMPORTS_SQL, rules), only('stuck_imports'))
        except BaseException:
            if aside is not None:
                aside.cancel()
            raise
    rows = aside.result() if aside is not None else [fetch(cursor, sql, p) for _name, sql, p in reads]
    for (name, _sql, _params), row in zip(reads, rows):
        facts[name] = row
    if 'annotations' in subsets:
        if fetch(cursor, ANNOTATIONS_COUNT_SQL)['n']:
            facts['annotations'] = fetch(cursor, ANNOTATIONS_SQL, query_params)
        else:
            facts['annotations'] = {'out_of_bounds_total': 0, 'copies_affected': 0, 'out_of_bounds': []}
    if params.get('watch_copy_ids'):
        facts['watched'] = fetch(cursor, WATCHED_SQL, {'copy_ids': params['watch_copy_ids']})['copies']
    if params.get('remediation_user'):
        facts['remediation_user'] = fetch(cursor, REMEDIATION_USER_SQL, {'username': params['remediation_user']})


def selected_subsets(requested):
    if 'all' in requested:
        return set(SUBSETS) - set(EXPLICIT_SUBSETS) | (set(requested) & set(EXPLICIT_SUBSETS))
    return set(requested) | set(['version'])


def read_facts(params, requested, application_name='korrigo.ops:korrigo_facts'):
    """The facts of the subsets ``requested`` (``all``, or names of SUBSETS), in one read-only snapshot.

    ``params`` holds the connection options and stuck_after_minutes, lock_age_minutes, stale_after_minutes,
    list_limit (and optionally watch_copy_ids, remediation_user)."""
    with read_only_session(params, application_name, FAILURE) as (cursor, rules):
        return gather(cursor, rules, selected_subsets(requested), params, application_name)


def korrigo_facts(params, application_name='korrigo.ops:korrigo_facts'):
    """ansible_facts.korrigo from korrigo_facts' parameters (the connection's and FACTS_ARGUMENT_SPEC), checked first."""
    for name in ('stuck_after_minutes', 'lock_age_minutes', 'list_limit', 'stale_after_minutes'):
        if params[name] < 0:
            raise KorrigoError("%s must not be negative (got %d)" % (name, params[name]))
    params = dict(params, watch_copy_ids=validate_uuids(params['watch_copy_ids']))
    return read_facts(params, params['gather_subset'], application_name)
