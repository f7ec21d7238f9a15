"""The read path at district scale: korrigo_facts, audit_trail (report), korrigo_latency_facts, copy_dossier and
the whole triage.yml on 1M copies / 5M events / 10k locks, each against the same counts as plain SQL.

Usage: python benchmarks/bench_read_path.py [--copies 1000000] [--events 5000000] [--locks 10000] [--repeat 3]
                                            [--keep] [--db korrigo_bench_district]

The database is benchmarks/district.py's (created here; with --keep reused when its shape is the same, else
seeded again). Every measurement is a real process: the module as Ansible runs it (its own Python, connection,
version detection, read-only transaction) or ansible-playbook. "empty module" is korrigo_facts gathering only
the version (start-up, connection, detection, no diagnosis): the floor of any module call. The plain-SQL floors
count the same things with the simplest statement over one connection. Plans are EXPLAIN (ANALYZE, BUFFERS) of
the modules' own statements with their own parameters.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import psycopg2
import psycopg2.extras

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import district  # noqa: E402

from ansible_collections.korrigo.ops.plugins.module_utils.audit_rules import (  # noqa: E402
    AUDIT_ACTION, REPEATS_SQL, REPORT_TEMPLATE, version_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version  # noqa: E402
from ansible_collections.korrigo.ops.plugins.module_utils import facts as korrigo_facts  # noqa: E402

BIG_TABLES = ('exams_copy', 'grading_gradingevent', 'grading_copylock', 'exams_booklet', 'exams_copy_booklets',
              'grading_annotation', 'core_auditlog')
# Where Korrigo has no index for the filter, a sequential scan is the only plan: named, not hidden.
NO_INDEX = {
    'exams_copy': 'status has no index in either Korrigo version',
    'grading_gradingevent': 'action has no index (indexes: copy_id, (copy_id, timestamp), actor_id)',
    'grading_annotation': 'coordinates have no index (out-of-bounds test)',
}

# The same counts, the plainest SQL: what any tool must at least pay.
FLOOR_FACTS_SQL = """
SELECT (SELECT jsonb_object_agg(status, n) FROM (SELECT status, count(*) AS n FROM exams_copy GROUP BY status) s),
       (SELECT count(*) FROM exams_copy c WHERE c.status = 'STAGING'
           AND NOT EXISTS (SELECT 1 FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id
                            WHERE cb.copy_id = c.id AND jsonb_array_length(b.pages_images) > 0)),
       (SELECT count(*) FROM exams_copy c WHERE c.status IN ('GRADING_FAILED', 'GRADING_IN_PROGRESS')
           AND (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = c.id AND e.action = 'FINALIZE'
                   AND e.metadata -> 'success' IS DISTINCT FROM 'false'::jsonb) >= 2),
       (SELECT count(*) FILTER (WHERE expires_at < now()) FROM grading_copylock),
       (SELECT count(*) FROM exams_copy c LEFT JOIN grading_copylock l ON l.copy_id = c.id
         WHERE c.status = 'LOCKED' AND (l.id IS NULL OR l.expires_at < now()))
"""
# The gaps: the trail events counted per copy, joined to every copy (what audit_trail does without count_repeats).
FLOOR_AUDIT_GAPS_SQL = """
SELECT count(*) AS copies,
       count(*) FILTER (WHERE k.finalize_ok > 1) AS duplicate_finalize,
       count(*) FILTER (WHERE c.status = 'GRADED' AND coalesce(k.finalize_ok, 0) = 0) AS missing_finalize,
       count(*) FILTER (WHERE c.pdf_source LIKE 'copies/source/%%' AND coalesce(k.imports, 0) = 0) AS missing_import
  FROM exams_copy c
  LEFT JOIN (SELECT copy_id, count(*) FILTER (WHERE action = 'IMPORT') AS imports,
                    count(*) FILTER (WHERE action = 'FINALIZE'
                                       AND metadata -> 'success' IS DISTINCT FROM 'false'::jsonb) AS finalize_ok
               FROM grading_gradingevent WHERE action IN ('IMPORT', 'VALIDATE', 'LOCK', 'FINALIZE')
              GROUP BY copy_id) k ON k.copy_id = c.id
"""
# And the playbook's duplicate groups: every event grouped by (copy, action, actor) (audit_trail's count_repeats).
FLOOR_AUDIT_SQL = """
SELECT g.*, (SELECT count(*) FROM (SELECT 1 FROM grading_gradingevent GROUP BY copy_id, action, actor_id
                                    HAVING count(*) > 1) d) AS duplicate_groups
  FROM (""" + FLOOR_AUDIT_GAPS_SQL + """) g
"""
FLOOR_DOSSIER_SQL = """
SELECT c.*, (SELECT jsonb_agg(e ORDER BY e."timestamp") FROM grading_gradingevent e WHERE e.copy_id = c.id)
  FROM exams_copy c WHERE c.id = %(id)s::uuid
"""
FLOOR_LATENCY_SQL = """
SELECT (SELECT count(*) FROM pg_stat_activity), (SELECT count(*) FROM pg_index WHERE indrelid = 'exams_copy'::regclass)
"""


def module_statements(db):
    """The modules' own statements with their own parameters (for EXPLAIN): korrigo_facts' findings with the copy
    ids its scan hands them, audit_trail's report with and without the repeat counts."""
    conn = psycopg2.connect(common.dsn_for(db), cursor_factory=psycopg2.extras.RealDictCursor)
    conn.set_session(readonly=True, isolation_level='REPEATABLE READ')
    with conn.cursor() as cur:
        rules = detect_version(cur)
        ids_of = korrigo_facts.scan_copies(cur, list(korrigo_facts.SUBSETS), {})
    conn.close()
    facts_params = {'stuck_after': 5, 'lock_age': 60, 'stale_after': 30, 'limit': 200}

    def only(finding):
        return dict(facts_params, only_copy_ids=ids_of[finding])
    audit_params = {'audit_action': AUDIT_ACTION, 'list_limit': 50, 'only_copy_ids': None,
                    'lock_workflow': rules['lock_workflow'], 'count_repeats': False}
    audit_params.update(version_params(rules['name']))
    return [
        ('korrigo_facts copies', korrigo_facts.COPIES_SQL, {}),
        ('korrigo_facts copy ids', korrigo_facts.COPY_IDS_SQL,
         {'statuses': sorted(set(s for v in korrigo_facts.FINDING_STATUSES.values() for s in v))}),
        ('korrigo_facts stuck_imports', korrigo_facts.statement(korrigo_facts.STUCK_IMPORTS_SQL, rules),
         only('stuck_imports')),
        ('korrigo_facts finalizations', korrigo_facts.statement(korrigo_facts.FINALIZATIONS_SQL, rules),
         only('finalizations')),
        ('korrigo_facts locks', korrigo_facts.LOCKS_SQL, only('locks')),
        ('korrigo_facts annotations', korrigo_facts.ANNOTATIONS_SQL, facts_params),
        ('audit_trail report (the gaps; also korrigo_facts audit)', REPORT_TEMPLATE, audit_params),
        ('audit_trail repeat counts (beside the gaps, count_repeats)', REPEATS_SQL, {'only_copy_ids': None}),
    ]


def plans(db):
    out = []
    for name, statement, params in module_statements(db):
        started = time.perf_counter()
        text = common.explain(db, statement, params)
        elapsed = time.perf_counter() - started
        scans = common.seq_scans(text, BIG_TABLES)
        out.append({'statement': name, 'explain_seconds': round(elapsed, 3), 'seq_scans': scans,
                    'seq_scans_without_index': [t for t in scans if t in NO_INDEX],
                    'seq_scans_with_index': [t for t in scans if t not in NO_INDEX],
                    'plan': text})
    return out


def one_copy(db):
    conn = psycopg2.connect(common.dsn_for(db))
    with conn.cursor() as cur:
        cur.execute("SELECT id::text FROM exams_copy WHERE status = 'GRADED' ORDER BY id LIMIT 1")
        copy_id = cur.fetchone()[0]
    conn.close()
    return copy_id


def measure(db, repeat):
    # The district has no files, so the dossier checks none: an empty directory of its own is its media root (the
    # stack's belongs to whichever checkout started the stack).
    media_root = tempfile.mkdtemp(prefix='korrigo-bench-media-')
    try:
        return measure_in(db, repeat, media_root)
    finally:
        os.rmdir(media_root)


def measure_in(db, repeat, media_root):
    copy_id = one_copy(db)
    triage_vars = {'korrigo_db_name': db, 'korrigo_report_dir': '/tmp/korrigo-bench-reports'}
    cases = {
        'empty_module': lambda: common.run_module('korrigo_facts', {'gather_subset': ['version']}, db)[0],
        'korrigo_facts': lambda: common.run_module('korrigo_facts', {}, db)[0],
        'korrigo_facts_triage_subsets': lambda: common.run_module(
            'korrigo_facts', {'gather_subset': ['copies', 'stuck_imports', 'finalizations', 'locks'],
                              'list_limit': 50}, db)[0],
        'korrigo_facts_triage_with_audit': lambda: common.run_module(
            'korrigo_facts', {'gather_subset': ['copies', 'stuck_imports', 'finalizations', 'locks', 'audit'],
                              'list_limit': 50}, db)[0],
        'korrigo_facts_floor_sql': lambda: common.timed_sql(db, FLOOR_FACTS_SQL)[0],
        'audit_trail_gaps': lambda: common.run_module('audit_trail', {'list_limit': 50, 'count_repeats': False},
                                                      db)[0],
        'audit_trail_gaps_floor_sql': lambda: common.timed_sql(db, FLOOR_AUDIT_GAPS_SQL)[0],
        'audit_trail': lambda: common.run_module('audit_trail', {'list_limit': 50}, db)[0],
        'audit_trail_floor_sql': lambda: common.timed_sql(db, FLOOR_AUDIT_SQL)[0],
        'korrigo_latency_facts': lambda: common.run_module(
            'korrigo_latency_facts', {'gather_subset': ['sessions', 'connections', 'indexes', 'statements']}, db)[0],
        'korrigo_latency_facts_floor_sql': lambda: common.timed_sql(db, FLOOR_LATENCY_SQL)[0],
        'copy_dossier': lambda: common.run_module('copy_dossier', {'copies': [copy_id], 'media_root': media_root}, db)[0],
        'copy_dossier_floor_sql': lambda: common.timed_sql(db, FLOOR_DOSSIER_SQL, {'id': copy_id})[0],
        'triage_playbook': lambda: triage(triage_vars),
    }
    for sub in ('copies', 'stuck_imports', 'finalizations', 'locks', 'annotations'):
        cases['korrigo_facts_subset_%s' % sub] = (
            lambda sub=sub: common.run_module('korrigo_facts', {'gather_subset': [sub]}, db)[0])
    runs = {}
    for name, fn in cases.items():
        fn()  # warm: the first run reads the tables from disk into the page cache
        runs[name] = common.stats(common.repeat(fn, repeat))
        print('  %-40s median %.3f s' % (name, runs[name]['median']), file=sys.stderr)
    return runs


def triage(extra_vars):
    seconds, rc, out = common.run_playbook(os.path.join(common.ROOT, 'playbooks', 'triage.yml'), extra_vars)
    if rc not in (0, 2):  # 2: the fleet summary fails a school whose triage found a P0/P1 (a verdict, not an error)
        raise SystemExit('triage.yml failed (rc %d): %s' % (rc, out[-3000:]))
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--db', default=district.DEFAULT_DB)
    parser.add_argument('--copies', type=int, default=1000000)
    parser.add_argument('--events', type=int, default=5000000)
    parser.add_argument('--locks', type=int, default=10000)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--keep', action='store_true', help='reuse the district database (same shape); keep it after')
    parser.add_argument('--no-plans', action='store_true')
    opts = parser.parse_args(argv)
    dsn, shape, seed_seconds = district.seed_district(opts.db, opts.copies, opts.events, opts.locks, keep=opts.keep)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM exams_copy), (SELECT count(*) FROM grading_gradingevent),"
                    " (SELECT count(*) FROM grading_copylock), pg_database_size(current_database())")
        copies, events, locks, size = cur.fetchone()
    conn.close()
    result = {
        'scenario': 'read_path',
        'n': {'copies': copies, 'events': events, 'locks': locks, 'database_bytes': size},
        'seed_seconds': round(seed_seconds, 1),
        'load_before': common.load_average(),
        'runs': measure(opts.db, opts.repeat),
        'load_after': common.load_average(),
    }
    if not opts.no_plans:
        result['plans'] = plans(opts.db)
    if not opts.keep:
        district.drop(opts.db)
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
