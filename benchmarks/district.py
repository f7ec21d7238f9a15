"""A district-sized Korrigo database (HEAD schema), seeded set-based, for the read-path benchmark.

    python benchmarks/district.py [--copies 1000000] [--events 5000000] [--locks 10000] [--db korrigo_bench_district]
                                  [--keep]

Shape, as a real school district's Korrigo (shares of ``--copies``; shared/korrigo-schema.md, "How copies come
into being"):

* 84 % batch-upload copies (exam scan split by PDFSplitter: origin ``batch``, one booklet, READY with
  ``validated_at`` and no IMPORT/VALIDATE event on HEAD) that were graded: two annotations, their two CREATE_ANN
  events and a FINALIZE; more CREATE_ANN events per graded copy (annotations later edited away) until the whole
  event table holds ``--events`` rows;
* 10 % batch copies READY (not graded yet), 1 % merges (READY, never validated), 2 % ``import_pdf`` copies (IMPORT
  event; half STAGING with pages awaiting validation, half GRADED), 0.1 % individual uploads (HEAD, no booklet, no
  event) uploaded 2 hours ago: the stuck imports;
* 2,500 (0.25 %) GRADING_FAILED batch copies with one to three failure FINALIZE events (``success: false``) by
  the teacher who clicked, 100 GRADING_IN_PROGRESS (half of them stale: worker died);
* ``--locks`` LOCKED copies with a legacy ``grading_copylock`` row, 90 % of them expired.

Seeded with korrigo_stack.seed's plan machinery (one INSERT ... SELECT per table; bulk mode above 5000 copies),
then the extra events in one INSERT ... SELECT over generate_series (uuid from md5, deterministic); the event
table is then rewritten in time order, as Korrigo appends it (correlation with copy_id near 0). The database
is created with korrigo_stack.migrate.create_database; its shape is written in COMMENT ON DATABASE so a second
run with the same shape reuses it (``--keep`` in bench.py), any other shape reseeds it.
"""
import argparse
import json
import os
import sys
import time

import psycopg2

from korrigo_stack import migrate
from korrigo_stack import seed as stack_seed
from korrigo_stack.seed import _TEACHER_BY_I

ADMIN_DSN = os.environ.get('KORRIGO_DSN', 'postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo')
DEFAULT_DB = 'korrigo_bench_district'

SHAPE = {}  # set by seed_district() before seed.seed() calls the builder


def groups(copies, locks):
    """Group sizes for ``copies`` copies (at least one of each)."""
    def share(fraction):
        return max(1, int(round(copies * fraction)))
    sizes = {
        'ready': share(0.10), 'merge': share(0.01), 'import_staging': share(0.01), 'import_graded': share(0.01),
        'individual': share(0.001), 'failed': share(0.0025), 'in_progress': max(2, share(0.0001)),
        'locked_expired': max(1, int(locks * 0.9)), 'locked_active': max(1, locks - int(locks * 0.9)),
    }
    sizes['graded'] = max(1, copies - sum(sizes.values()))
    return sizes


HISTORY = dict(
    importer_id="%(admin)s",
    imported_at="now() - interval '20 days' - (g.i %% 20000) * interval '1 minute'",
    validator_id="%(admin)s",
    validated_at="now() - interval '20 days' - (g.i %% 20000) * interval '1 minute' + interval '20 minutes'",
    corrector_id=_TEACHER_BY_I, dispatch_run_id="%(dispatch_run)s::uuid",
    assigned_at="now() - interval '20 days' - (g.i %% 20000) * interval '1 minute' + interval '80 minutes'",
)
GRADED = dict(
    status="'GRADED'", grader_id=_TEACHER_BY_I,
    ann_at="now() - interval '5 days' - (g.i %% 7000) * interval '1 minute'",
    graded_at="now() - interval '5 days' - (g.i %% 7000) * interval '1 minute' + interval '20 minutes'",
    retries="1", final_pdf="true", ann1_delta="8 + g.i %% 8", ann2_delta="-(g.i %% 3)",
    appreciation="'Travail sérieux.'",
)
KINDS = ('copy', 'booklet', 'token', 'ev_import', 'ev_validate', 'ev_finalize', 'ev_ann1', 'ev_ann2', 'ann1',
         'ann2', 'booklet2', 'exampdf')


@stack_seed.scenario('district', 'district scale (benchmarks/district.py): 1M copies, 5M events, 10k locks')
def build_district(ctx, count):
    sizes = groups(count or 1000, SHAPE.get('locks', 10))
    exams = [ctx.create_exam(j, name='Bac blanc %d (district)' % j) for j in (1, 2, 3)]
    individual_exam = ctx.create_exam(4, name='Devoir maison (district)', upload_mode='INDIVIDUAL_A4')
    plans = {
        'graded': dict(HISTORY, origin="'batch'", **GRADED),
        'ready': dict(HISTORY, origin="'batch'", status="'READY'"),
        'merge': dict(HISTORY, origin="'merge'", status="'READY'"),
        'import_staging': dict(HISTORY, origin="'import'", status="'STAGING'", validated_at='NULL',
                               validator_id='NULL', assigned_at='NULL', corrector_id='NULL',
                               dispatch_run_id='NULL',
                               imported_at="now() - (10 + g.i %% 290) * interval '1 minute'"),
        'import_graded': dict(HISTORY, origin="'import'", **GRADED),
        'individual': dict(origin="'individual'", status="'STAGING'",
                           imported_at="now() - interval '2 hours' - g.i * interval '1 second'"),
        'failed': dict(HISTORY, origin="'batch'", status="'GRADING_FAILED'", grader_id=_TEACHER_BY_I,
                       ann_at="now() - interval '1 day'", ann1_delta='5', ann2_delta='-1',
                       retries='1 + g.i %% 3',
                       error_message="CASE g.i %% 4 WHEN 0 THEN 'timeout: flattening exceeded 90.0s'"
                                     " WHEN 1 THEN 'ConnectionResetError: [Errno 104] Connection reset by peer'"
                                     " ELSE 'flatten_copy failed: fitz error: cannot open page' END"),
        'in_progress': dict(HISTORY, origin="'batch'", status="'GRADING_IN_PROGRESS'", grader_id=_TEACHER_BY_I,
                            ann_at="CASE WHEN g.i %% 2 = 0 THEN now() - interval '2 hours'"
                                   " ELSE now() - interval '1 minute' END",
                            ann1_delta='5', ann2_delta='0'),
        'locked_expired': dict(HISTORY, origin="'batch'", status="'LOCKED'", lock_owner_id=_TEACHER_BY_I,
                               locked_at="now() - interval '50 minutes' + (g.i %% 30) * interval '1 minute'",
                               expires_at="now() - interval '40 minutes' + (g.i %% 30) * interval '1 minute'",
                               lock_row='true'),
        'locked_active': dict(HISTORY, origin="'batch'", status="'LOCKED'", lock_owner_id=_TEACHER_BY_I,
                              locked_at="now() - interval '2 minutes'", expires_at="now() + interval '8 minutes'",
                              lock_row='true'),
    }
    for k, (group, exprs) in enumerate(sorted(plans.items())):
        ctx.load_ids(group, sizes[group], KINDS)
        exam = individual_exam if group == 'individual' else exams[k % len(exams)]
        ctx.plan(group, sizes[group], params={'exam': exam}, **exprs)
    ctx.cur.execute("SELECT array_agg(copy_id) FROM _seed_plan WHERE grp = 'failed'")
    failed_ids = ctx.cur.fetchone()[0]
    counts = ctx.materialize()
    cur = ctx.cur
    # Korrigo's failure trail: one FINALIZE event (success false) per failed attempt, by the teacher who clicked.
    cur.execute(
        "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
        " SELECT md5('district:failure:' || c.id || ':' || k)::uuid, 'FINALIZE',"
        "        now() - interval '6 hours' + k * interval '10 minutes',"
        "        jsonb_build_object('detail', c.grading_error_message, 'retries', k, 'success', false),"
        "        coalesce(c.assigned_corrector_id, %s), c.id"
        "   FROM exams_copy c CROSS JOIN LATERAL generate_series(1, c.grading_retries) AS k"
        "  WHERE c.id = ANY(%s::uuid[])", (ctx.users['prof.martin'], failed_ids))
    counts['failure_events'] = cur.rowcount
    # More CREATE_ANN events per graded copy (annotations edited away since) until the table holds the target.
    cur.execute("SELECT count(*) FROM grading_gradingevent")
    have = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM exams_copy WHERE status = 'GRADED'")
    graded = cur.fetchone()[0]
    missing = max(0, SHAPE.get('events', 0) - have)
    if missing and graded:
        per_copy, remainder = divmod(missing, graded)
        cur.execute(
            "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
            " SELECT md5('district:ann:' || c.id || ':' || k)::uuid, 'CREATE_ANN',"
            "        c.graded_at - interval '30 minutes' + k * interval '10 seconds',"
            "        jsonb_build_object('annotation_id', md5('district:annotation:' || c.id || ':' || k)::uuid::text,"
            "                           'page', k %% 4), c.assigned_corrector_id, c.id"
            "   FROM (SELECT c.*, row_number() OVER (ORDER BY c.id) AS r FROM exams_copy c"
            "          WHERE c.status = 'GRADED') c"
            "  CROSS JOIN LATERAL generate_series(1, %s + CASE WHEN c.r <= %s THEN 1 ELSE 0 END) AS k",
            (per_copy, remainder))
        counts['extra_annotation_events'] = cur.rowcount
    return {'counts': counts, 'sizes': sizes}


def chronological(cur):
    """Rewrite grading_gradingevent in time order, as Korrigo appends it (the seeder writes it copy by copy,
    which would make every scan by copy_id look sequential and flatter index plans)."""
    cur.execute('BEGIN')
    # Same rows, same references: skip the 10M deferred foreign-key checks at COMMIT (seed.py's bulk mode does too).
    cur.execute("SET LOCAL session_replication_role = replica")
    cur.execute('CREATE TEMP TABLE _events ON COMMIT DROP AS SELECT * FROM grading_gradingevent'
                ' ORDER BY "timestamp", id')
    cur.execute('TRUNCATE grading_gradingevent')
    cur.execute('INSERT INTO grading_gradingevent SELECT * FROM _events ORDER BY "timestamp", id')
    cur.execute('COMMIT')


def current_shape(dsn):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                        " WHERE datname = current_database()")
            text = cur.fetchone()[0]
        return json.loads(text) if text else None
    except ValueError:
        return None
    finally:
        conn.close()


def seed_district(db=DEFAULT_DB, copies=1000000, events=5000000, locks=10000, keep=True, admin_dsn=ADMIN_DSN):
    """Create (or reuse, same shape and ``keep``) the district database; returns (dsn, shape, seconds seeding)."""
    dsn = migrate.create_database(admin_dsn, db, 'head')
    wanted = {'copies': copies, 'events': events, 'locks': locks, 'seeder': 3}
    if keep and current_shape(dsn) == wanted:
        return dsn, wanted, 0.0
    SHAPE.clear()
    SHAPE.update(wanted)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    started = time.perf_counter()
    stack_seed.reset(conn)
    result = stack_seed.seed(conn, 'district', count=copies)
    with conn.cursor() as cur:
        chronological(cur)
        cur.execute('VACUUM ANALYZE')
        cur.execute('COMMENT ON DATABASE %s IS %%s' % db, (json.dumps(wanted, sort_keys=True),))
    conn.close()
    elapsed = time.perf_counter() - started
    shape = dict(wanted, counts=result['counts'], sizes=result['sizes'])
    return dsn, shape, elapsed


def drop(db=DEFAULT_DB, admin_dsn=ADMIN_DSN):
    migrate.drop_database(admin_dsn, db)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--db', default=DEFAULT_DB)
    parser.add_argument('--copies', type=int, default=1000000)
    parser.add_argument('--events', type=int, default=5000000)
    parser.add_argument('--locks', type=int, default=10000)
    parser.add_argument('--keep', action='store_true', help='reuse the database when its shape is the same')
    parser.add_argument('--drop', action='store_true', help='drop the database and exit')
    opts = parser.parse_args(argv)
    if opts.drop:
        drop(opts.db)
        return 0
    dsn, shape, seconds = seed_district(opts.db, opts.copies, opts.events, opts.locks, keep=opts.keep)
    print(json.dumps({'database': opts.db, 'shape': shape, 'seconds': round(seconds, 1)},
                     indent=1, default=str))
    return 0


if __name__ == '__main__':
    sys.exit(main())
