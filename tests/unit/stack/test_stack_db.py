"""migrate / check_schema / seed against a real PostgreSQL (skipped when none is reachable).

Uses a scratch database of its own; the connection is opened the way the integration fixtures open
theirs (autocommit, RealDictCursor) to prove the seeder does not depend on the caller's settings.
"""
import pytest

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.extras  # noqa: E402

from korrigo_stack import common, migrate, seed  # noqa: E402
from korrigo_stack.schema import check_schema  # noqa: E402

TEACHERS = {"prof.martin", "prof.durand", "prof.bernard"}


@pytest.fixture(params=["head", "8f16b75"])
def db(request, scratch_dsn):
    conn = psycopg2.connect(scratch_dsn, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = True
    migrate.migrate(conn, request.param, drop=True)
    yield conn
    conn.close()


def rows(conn, statement, params=None):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


def scalar(conn, statement, params=None):
    return list(rows(conn, statement, params)[0].values())[0]


def test_migrated_schema_is_identical_to_the_facts(db):
    version = common.detect_schema_version(db)
    problems, info = check_schema.check(db, version)
    assert problems == [], problems
    assert info["actual"] == info["expected"]
    assert scalar(db, "SELECT count(*) FROM django_migrations") == len(migrate.MIGRATIONS[version])
    # idempotent, and the other version is refused without --drop
    assert migrate.migrate(db, version)["created"] is False
    other = "8f16b75" if version == "head" else "head"
    with pytest.raises(migrate.MigrateError):
        migrate.migrate(db, other)
    assert common.detect_schema_version(db) == version


def test_no_database_defaults_besides_identity(db):
    defaults = rows(db, "SELECT table_name, column_name, column_default, is_identity FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND table_name <> 'django_migrations'"
                        " AND (column_default IS NOT NULL OR is_identity = 'YES')")
    assert all(r["is_identity"] == "YES" for r in defaults), defaults
    fks = rows(db, "SELECT conname, condeferrable, condeferred, confdeltype FROM pg_constraint WHERE contype = 'f'")
    assert fks and all(r["condeferrable"] and r["condeferred"] and r["confdeltype"] == "a" for r in fks)


def test_locks_scenario(db):
    version = common.detect_schema_version(db)
    seed.reset(db)
    seeded = seed.seed(db, "locks")
    assert db.autocommit is True
    assert seeded["version"] == version and set(seeded["users"]) >= TEACHERS | {"admin", "korrigo-ops"}
    expired, active, ready = seeded["expired_copy_ids"], seeded["active_copy_ids"], seeded["ready_copy_ids"]
    assert (len(expired), len(active), len(ready)) == (5, 2, 3)

    locks = rows(db, """
        SELECT l.copy_id::text AS copy_id, u.username, c.status, c.locked_at = l.locked_at AS same_time,
               c.locked_by_id = l.owner_id AS same_owner,
               l.expires_at < now() - interval '5 minutes' AND l.expires_at > now() - interval '50 minutes' AS expired_window,
               l.locked_at <= l.expires_at - interval '10 minutes' AS ttl_ok,
               l.locked_at > now() - interval '60 minutes' AS younger_than_hour,
               extract(epoch FROM l.expires_at - now()) AS expires_in,
               extract(epoch FROM now() - l.locked_at) AS age,
               (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = l.copy_id AND e.action = 'LOCK'
                  AND e."timestamp" = l.locked_at AND e.actor_id = l.owner_id
                  AND e.metadata ->> 'token_prefix' = left(l.token::text, 8)) AS lock_events
          FROM grading_copylock l JOIN exams_copy c ON c.id = l.copy_id JOIN auth_user u ON u.id = l.owner_id""")
    by_copy = dict((r["copy_id"], r) for r in locks)
    assert set(by_copy) == set(expired) | set(active)
    for copy_id in expired:
        lock = by_copy[copy_id]
        assert lock["status"] == "LOCKED" and lock["same_time"] and lock["same_owner"] and lock["username"] in TEACHERS
        assert lock["expired_window"] and lock["ttl_ok"] and lock["younger_than_hour"] and lock["lock_events"] == 1
    first, second = (by_copy[c] for c in active)
    assert 7 * 60 < first["expires_in"] <= 8 * 60 and 9.5 * 60 < first["age"] < 11 * 60
    assert 8 * 60 < second["expires_in"] <= 9 * 60 and 2.9 * 3600 < second["age"] < 3.1 * 3600
    assert len(set(r["username"] for r in locks)) == 3

    ready_rows = rows(db, "SELECT status, locked_at, locked_by_id, validated_at FROM exams_copy WHERE id = ANY(%s::uuid[])",
                      (ready,))
    assert all(r["status"] == "READY" and r["locked_at"] is None and r["validated_at"] for r in ready_rows)
    ready_lock_events = scalar(db, "SELECT count(*) FROM grading_gradingevent WHERE action IN ('LOCK', 'UNLOCK')"
                                   " AND copy_id = ANY(%s::uuid[])", (ready,))
    assert ready_lock_events == (0 if version == "head" else 2)
    drafts = rows(db, "SELECT d.copy_id::text AS copy_id, d.lock_token = l.token AS same_token FROM grading_draftstate d"
                      " JOIN grading_copylock l ON l.copy_id = d.copy_id")
    assert {d["copy_id"] for d in drafts} == set(seeded["draft_copy_ids"]) and all(d["same_token"] for d in drafts)
    assert set(seeded["draft_copy_ids"]) & set(expired)
    check_trails(db)


def test_baseline_scenario_and_determinism(db):
    version = common.detect_schema_version(db)
    seed.reset(db)
    first = seed.seed(db, "baseline")
    locks = seed.seed(db, "locks")
    again = seed.seed(db, "baseline")
    assert again["copy_ids_by_status"] == first["copy_ids_by_status"] and again["exam_id"] == first["exam_id"]
    assert scalar(db, "SELECT count(*) FROM exams_copy") == 20 and scalar(db, "SELECT count(*) FROM auth_user") == 5
    by_status = first["copy_ids_by_status"]
    expected = {"STAGING": 2, "READY": 3, "GRADED": 3, "LOCKED": 2} if version == "8f16b75" else \
        {"STAGING": 2, "READY": 5, "GRADED": 3}
    assert {k: len(v) for k, v in by_status.items()} == expected

    graded = rows(db, """
        SELECT c.id::text AS id, c.final_pdf, c.graded_at, c.grading_retries, c.locked_at,
               (SELECT array_agg(e.metadata ORDER BY e."timestamp") FROM grading_gradingevent e
                 WHERE e.copy_id = c.id AND e.action = 'FINALIZE') AS finalize,
               (SELECT sum(a.score_delta) FROM grading_annotation a WHERE a.copy_id = c.id) AS score,
               (SELECT count(*) FROM grading_copylock l WHERE l.copy_id = c.id) AS lock_rows
          FROM exams_copy c WHERE c.id = ANY(%s::uuid[])""", (by_status["GRADED"],))
    for copy in graded:
        assert copy["final_pdf"] == "copies/final/copy_%s_corrected.pdf" % copy["id"]
        assert copy["graded_at"] and copy["grading_retries"] == 1 and copy["locked_at"] is None and copy["lock_rows"] == 0
        assert len(copy["finalize"]) == 1 and set(copy["finalize"][0]) == {"final_score", "retries"}
        assert float(copy["finalize"][0]["final_score"]) == float(copy["score"]) and copy["finalize"][0]["retries"] == 1
    staging = rows(db, "SELECT validated_at FROM exams_copy WHERE id = ANY(%s::uuid[])", (by_status["STAGING"],))
    assert all(r["validated_at"] is None for r in staging)
    lock_events = scalar(db, "SELECT count(*) FROM grading_gradingevent WHERE action IN ('LOCK', 'UNLOCK')"
                             " AND copy_id = ANY(%s::uuid[])", (sum(by_status.values(), []),))
    if version == "head":
        assert lock_events == 0
    else:
        assert lock_events > 0
        active = rows(db, "SELECT l.expires_at > now() AS active FROM grading_copylock l WHERE l.copy_id = ANY(%s::uuid[])",
                      (by_status["LOCKED"],))
        assert len(active) == 2 and all(r["active"] for r in active)
    assert scalar(db, "SELECT count(*) FROM core_auditlog WHERE ip_address IS NOT NULL AND action = 'login.success'") == 5
    assert locks["expired_copy_ids"]
    check_trails(db)
    assert seed.reset(db) and scalar(db, "SELECT count(*) FROM exams_copy") == 0


def test_bulk_seed_is_set_based_and_consistent(db):
    seed.reset(db)
    count = seed.BULK_THRESHOLD + 50
    seeded = seed.seed(db, "locks", count=count)
    assert len(seeded["expired_copy_ids"]) == count
    assert scalar(db, "SELECT count(*) FROM grading_copylock WHERE expires_at < now()") == count
    assert scalar(db, "SELECT count(*) FROM grading_gradingevent WHERE action = 'LOCK'") >= count + 2
    assert len(set(seeded["expired_copy_ids"])) == count
    check_trails(db)


def check_trails(conn):
    """Invariants every seeded copy satisfies whatever the scenario, per creation path (shared/korrigo-schema.md,
    "How copies come into being"): import_pdf, the exam's batch upload, a merge."""
    head = common.detect_schema_version(conn) == "head"
    origin = ("CASE WHEN c.pdf_source LIKE 'copies/source/%%' THEN 'import'"
              " WHEN c.pdf_source LIKE 'exams/individual/%%' THEN 'individual'"
              " WHEN c.status <> 'STAGING' AND c.validated_at IS NULL THEN 'merge' ELSE 'batch' END")
    bad = rows(conn, r"""
        WITH x AS (SELECT c.*, """ + origin + r""" AS origin,
                          (SELECT count(*) FROM exams_copy_booklets cb WHERE cb.copy_id = c.id) AS booklets,
                          (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = c.id AND e.action = 'IMPORT'
                             AND (e.metadata ->> 'pages')::int = 4 AND e.metadata ? 'filename') AS imports,
                          (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = c.id AND e.action = 'IMPORT')
                              AS any_imports,
                          (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = c.id AND e.action = 'VALIDATE'
                             AND e."timestamp" = c.validated_at) AS validates
                     FROM exams_copy c)
        SELECT x.id, x.origin FROM x
         WHERE (x.origin = 'import' AND (x.anonymous_id <> 'IMPORT-' || upper(left(x.id::text, 8))
                                         OR x.pdf_source <> 'copies/source/copy_' || x.id || '.pdf'
                                         OR x.imports <> 1 OR x.booklets <> 1
                                         OR (x.validated_at IS NULL) <> (x.status = 'STAGING')
                                         OR (x.validated_at IS NOT NULL AND x.validates <> 1)))
            OR (x.origin <> 'import' AND (x.any_imports <> 0
                                          OR x.anonymous_id !~ %(anonymous)s
                                          OR x.pdf_source NOT IN ('', 'exams/individual/' || split_part(x.pdf_source, '/', 3))))
            OR (x.origin = 'batch' AND (x.booklets <> 1
                                        OR (x.validated_at IS NULL) <> (x.status = 'STAGING')
                                        OR (x.validated_at IS NOT NULL AND x.validates <> %(batch_validates)s)))
            OR (x.origin = 'merge' AND (x.booklets <> 2 OR x.validates <> 0))
            OR (x.status = 'LOCKED') <> (x.locked_at IS NOT NULL)
         LIMIT 5""", {"anonymous": r"^[0-9A-F]{4}-([0-9]{3,}|[0-9A-F]{6})$" if head else r"^[0-9A-F]{8}$",
                      "batch_validates": 0 if head else 1})
    assert bad == [], bad
    pages = rows(conn, """
        SELECT cb.copy_id::text AS copy_id, b.id::text AS booklet_id, b.exam_id::text AS exam_id, b.start_page,
               b.end_page, b.pages_images, c.pdf_source LIKE 'copies/source/%%' AS imported
          FROM exams_booklet b JOIN exams_copy_booklets cb ON cb.booklet_id = b.id JOIN exams_copy c ON c.id = cb.copy_id""")
    assert pages
    for row in pages:
        if row["imported"]:
            assert row["start_page"] == 1
            expected = ["copies/pages/%s/p%03d.png" % (row["copy_id"], k) for k in range(row["end_page"])]
        else:  # PDFSplitter: the exam's pages start_page..end_page of this booklet
            expected = ["booklets/%s/%s/page_%03d.png" % (row["exam_id"], row["booklet_id"], k)
                        for k in range(row["start_page"], row["end_page"] + 1)]
        assert row["pages_images"] == expected and len(expected) == 4
    order = rows(conn, "SELECT count(*) AS n FROM grading_gradingevent a JOIN grading_gradingevent b ON a.copy_id = b.copy_id"
                       " WHERE a.action = 'IMPORT' AND b.action <> 'IMPORT' AND b.\"timestamp\" <= a.\"timestamp\"")
    assert order[0]["n"] == 0
    # As in a real school, most copies come from the exam's batch upload.
    paths = rows(conn, "SELECT " + origin + " AS origin, count(*) AS n FROM exams_copy c GROUP BY 1")
    counted = dict((r["origin"], r["n"]) for r in paths)
    assert counted.get("batch", 0) > sum(n for o, n in counted.items() if o != "batch")


def test_create_database(pg_server):
    from psycopg2 import sql

    name = "ks_unit_create_%d" % __import__("os").getpid()
    dsn = migrate.create_database(pg_server, name, "8f16b75")
    try:
        conn = psycopg2.connect(dsn)
        try:
            assert common.detect_schema_version(conn) == "8f16b75"
        finally:
            conn.close()
        assert migrate.create_database(pg_server, name, "8f16b75") == dsn  # idempotent
    finally:
        admin = psycopg2.connect(pg_server)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()
