"""Seed the stand-in database with data shaped exactly as Korrigo's ORM writes it.

    python3 -m korrigo_stack.seed [--dsn DSN] [--reset] [--scenario NAME ...] [--count N] [--json]
    python3 -m korrigo_stack.seed --list

API::

    seed(conn, scenario, count=None) -> dict   # ids created (for tests); commits
    reset(conn)                                # TRUNCATE every Korrigo table, keep the schema

Faithfulness rules (see shared/korrigo-schema.md):

* the schema version (HEAD or 8f16b75) is detected from the columns present, and rows are written in
  that version's shape (HEAD: exams_exam.upload_mode/created_at...; no LOCK/UNLOCK events in the
  normal HEAD flow, which has no lock service any more);
* every NOT NULL column is supplied (Korrigo has no DB defaults): uuids, timestamps, jsonb defaults
  (``[]``, ``{}``), core_auditlog.ip_address/user_agent, grading_retries, version...;
* trails are consistent: an IMPORT event (metadata ``{filename, pages}``) for every imported copy,
  VALIDATE at ``validated_at``, LOCK (metadata ``{token_prefix}``) at the lock's ``locked_at`` by its
  owner, FINALIZE ``{final_score, retries}`` at ``graded_at`` for GRADED copies, CREATE_ANN for their
  annotations; booklets with ``pages_images`` = ``copies/pages/<copy uuid>/p000.png``... linked
  through exams_copy_booklets; ``pdf_source`` = ``copies/source/copy_<uuid>.pdf``; ``final_pdf`` =
  ``copies/final/copy_<uuid>_corrected.pdf``; ``anonymous_id`` = ``IMPORT-`` + the first 8 hex digits
  of the copy uuid, upper-case (Korrigo's import);
* timestamps are relative to the transaction's ``now()``;
* deterministic: every uuid is ``uuid5(NAMESPACE, f"{scenario}:{kind}:{i}")`` (kind like
  ``expired-copy``, ``active-booklet``; i from 1). A copy uuid whose 8-hex prefix (hence
  anonymous_id) is already taken gets the name ``...:{i}/{k}`` for the first free k = 1, 2, ...
  (only happens at scale: ~1 collision per 100 000 copies);
* users are upserted by username; seeding a scenario again first deletes that scenario's previous
  rows (its exams and everything hanging off them), so several scenarios can live together and a
  re-seed gives fresh, "now"-relative data.

Scale: with ``--count N`` a scenario writes N copies of its main group with every row they need, in
one transaction and one ``INSERT ... SELECT`` over ``generate_series`` per table. Only the uuid5
values are computed in Python (PostgreSQL has no SHA-1 without an extension Korrigo's database does
not have) and streamed with one COPY into a temporary table.

Adding a scenario: write ``def build(ctx, count) -> dict`` using ``ctx.load_ids``, ``ctx.plan`` and
``ctx.materialize`` (or plain SQL on ``ctx.cur``), and register it with ``@scenario(name, help)``.
"""

import argparse
import hashlib
import io
import json
import logging
import sys
import uuid

from korrigo_stack import common

logger = logging.getLogger("korrigo_stack.seed")

NAMESPACE = uuid.UUID("6f1c2a4e-9d57-4c1b-8a3e-0b7f5d2c9e11")
MAX_EXAMS_PER_SCENARIO = 4
# Plans of at least this many copies are written in bulk mode (see SeedContext.materialize).
BULK_THRESHOLD = 5000

# Every seeded user's password is "korrigo-stand-in" (Django pbkdf2_sha256, 600000 iterations).
PASSWORD = "korrigo-stand-in"
# username -> (first_name, last_name, email, is_superuser, is_staff, password hash)
USERS = {
    "admin": ("Admin", "Korrigo", "admin@korrigo.test", True, True,
              "pbkdf2_sha256$600000$KsAdminSalt2026xxxxxxx$BGM5RMxNrpxSMp9ywcyuH3/wCZewD9XuH67tyTbaw1s="),
    "korrigo-ops": ("Korrigo", "Ops", "ops@korrigo.test", False, True,
                    "pbkdf2_sha256$600000$KsOpsSalt2026xxxxxxxxx$vbOXoz8ntRPuI+f9HFfYaJQnTig8e3cD5uecgfhW+Xs="),
    "prof.martin": ("Claire", "Martin", "claire.martin@korrigo.test", False, False,
                    "pbkdf2_sha256$600000$KsMartinSalt2026xxxxxx$GaWyHLr906Gz5iCx3FQKqzk5YFn8scqyi+1EZ44CrVM="),
    "prof.durand": ("Julien", "Durand", "julien.durand@korrigo.test", False, False,
                    "pbkdf2_sha256$600000$KsDurandSalt2026xxxxxx$l1c7W5bMJ07yjbe6YuhPt+gm1qnoAsrCFzKTBsWpvVo="),
    "prof.bernard": ("Sophie", "Bernard", "sophie.bernard@korrigo.test", False, False,
                     "pbkdf2_sha256$600000$KsBernardSalt2026xxxxx$4TeB6zui0cIgjwy4ka16CJU23yICNGBJeo+7JJ3Nk3g="),
}
TEACHERS = ("prof.martin", "prof.durand", "prof.bernard")
AUDIT_IP = "127.0.0.1"
AUDIT_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

# Id kinds a plan row can carry (columns of the _seed_ids temp table, besides grp and i).
ID_KINDS = ("copy", "booklet", "token", "ev_import", "ev_validate", "ev_lock", "ev_unlock",
            "ev_finalize", "ev_ann1", "ev_ann2", "ann1", "ann2", "draft", "client", "booklet2", "exampdf")

# How a copy came into being (shared/korrigo-schema.md, "How copies come into being"); see materialize().
ORIGINS = ("batch", "individual", "import", "merge")

# Columns of the _seed_plan temp table: one row per copy, everything materialize() needs.
PLAN_COLUMNS = (
    ("grp", "text"), ("i", "integer"), ("exam_id", "uuid"), ("origin", "text"),
    ("copy_id", "uuid"), ("anonymous_id", "text"), ("status", "text"),
    ("booklet_id", "uuid"), ("pages", "integer"),
    ("importer_id", "integer"), ("imported_at", "timestamptz"), ("import_filename", "text"),
    ("validator_id", "integer"), ("validated_at", "timestamptz"),
    ("corrector_id", "integer"), ("assigned_at", "timestamptz"), ("dispatch_run_id", "uuid"),
    ("lock_owner_id", "integer"), ("lock_token", "uuid"), ("locked_at", "timestamptz"),
    ("expires_at", "timestamptz"), ("lock_row", "boolean"), ("lock_event", "boolean"),
    ("unlock_at", "timestamptz"),
    ("draft_id", "uuid"), ("draft_client", "uuid"), ("draft_version", "integer"),
    ("draft_updated_at", "timestamptz"),
    ("grader_id", "integer"), ("ann_at", "timestamptz"), ("graded_at", "timestamptz"),
    ("retries", "integer"), ("final_pdf", "boolean"), ("error_message", "text"), ("appreciation", "text"),
    ("ann1_id", "uuid"), ("ann1_delta", "integer"), ("ann2_id", "uuid"), ("ann2_delta", "integer"),
    ("ev_import", "uuid"), ("ev_validate", "uuid"), ("ev_lock", "uuid"), ("ev_unlock", "uuid"),
    ("ev_finalize", "uuid"), ("ev_ann1", "uuid"), ("ev_ann2", "uuid"),
    ("booklet2_id", "uuid"), ("exampdf_id", "uuid"), ("booklet_index", "integer"),
)
PLAN_NAMES = tuple(name for name, _expr in PLAN_COLUMNS)

# Korrigo's tables in delete order (children first); the ones absent from a version are skipped.
DATA_TABLES = (
    "grading_annotation", "grading_gradingevent", "grading_copylock", "grading_draftstate",
    "grading_questionremark", "grading_score", "exams_copy_booklets", "exams_documentchunk",
    "exams_documentpage", "exams_documenttextextraction", "exams_examdocument",
    "grading_annotationtemplate", "exams_examdocumentset", "exams_exampdf", "exams_copy",
    "exams_booklet", "exams_exam_correctors", "exams_exam", "students_student",
    "grading_userannotation", "core_auditlog", "core_userprofile", "core_globalsettings", "auth_user",
)


# --------------------------------------------------------------------------------------------
# Deterministic identifiers
# --------------------------------------------------------------------------------------------

def seed_uuid(scenario, kind, i):
    """The uuid the seeder gives to ``kind`` number ``i`` of ``scenario``."""
    return uuid.uuid5(NAMESPACE, "%s:%s:%s" % (scenario, kind, i))


def anonymous_id(copy_id):
    """Korrigo's import: 'IMPORT-' + first 8 hex digits of the copy uuid, upper-case."""
    return "IMPORT-%s" % str(copy_id)[:8].upper()


class _Uuid5Series:
    """Fast uuid5 for "<prefix><i>" names: hex strings (PostgreSQL accepts uuids without dashes)."""

    def __init__(self, prefix):
        self._base = hashlib.sha1(NAMESPACE.bytes + prefix.encode("utf-8"))

    def __call__(self, suffix):
        digest = self._base.copy()
        digest.update(suffix.encode("utf-8"))
        raw = bytearray(digest.digest()[:16])
        raw[6] = (raw[6] & 0x0F) | 0x50
        raw[8] = (raw[8] & 0x3F) | 0x80
        return raw.hex()


# --------------------------------------------------------------------------------------------
# Scenario registry
# --------------------------------------------------------------------------------------------

SCENARIOS = {}


def scenario(name, description):
    """Register ``build(ctx, count) -> dict`` as scenario ``name``."""
    def register(build):
        SCENARIOS[name] = {"build": build, "description": description}
        return build
    return register


class SeedError(Exception):
    pass


class SeedContext:
    """What a scenario builder works with: cursor, version, users, and the plan machinery."""

    def __init__(self, conn, cur, scenario_name):
        self.conn = conn
        self.cur = cur
        self.scenario = scenario_name
        self.version = common.detect_schema_version(conn)
        if self.version is None:
            raise SeedError("no Korrigo schema in this database: run `python3 -m korrigo_stack.migrate` first")
        self.tables = common.existing_tables(self.cur)
        self.users = {}
        self._prefixes = None
        self._temp_ready = False
        self.bulk = False

    # -- generic helpers ----------------------------------------------------------------------
    def uuid(self, kind, i):
        return seed_uuid(self.scenario, kind, i)

    def params(self, **extra):
        """SQL parameters every plan expression can use: user ids by name (admin, ops, martin,
        durand, bernard), the scenario's dispatch run id, plus ``extra``."""
        out = {
            "admin": self.users["admin"], "ops": self.users["korrigo-ops"],
            "martin": self.users["prof.martin"], "durand": self.users["prof.durand"],
            "bernard": self.users["prof.bernard"],
            "dispatch_run": str(self.uuid("dispatch", 1)),
        }
        out.update(extra)
        return out

    # -- users ---------------------------------------------------------------------------------
    def ensure_users(self):
        cur = self.cur
        for username, (first, last, email, superuser, staff, password) in USERS.items():
            cur.execute(
                "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name,"
                " email, is_staff, is_active, date_joined)"
                " VALUES (%s, now() - interval '1 day', %s, %s, %s, %s, %s, %s, true, now() - interval '120 days')"
                " ON CONFLICT (username) DO NOTHING",
                (password, superuser, username, first, last, email, staff))
        cur.execute("SELECT username, id FROM auth_user WHERE username = ANY(%s)", (list(USERS),))
        self.users = dict(cur.fetchall())
        cur.execute(
            "INSERT INTO core_userprofile (must_change_password, user_id)"
            " SELECT false, id FROM auth_user WHERE username = ANY(%s) ON CONFLICT (user_id) DO NOTHING",
            (list(USERS),))
        cur.execute("SELECT count(*) FROM core_globalsettings")
        if cur.fetchone()[0] == 0:
            cur.execute("INSERT INTO core_globalsettings (institution_name, theme, default_exam_duration,"
                        " notifications_enabled) VALUES (%s, 'light', 60, true)", ("Lycée Pierre Mendès France",))
        # One login.success audit row per seeded user (log_authentication_attempt), written once.
        cur.execute(
            "INSERT INTO core_auditlog (\"timestamp\", student_id, action, resource_type, resource_id,"
            " ip_address, user_agent, metadata, user_id)"
            " SELECT now() - interval '1 day', NULL, 'login.success', 'User', u.username, %s, %s,"
            " jsonb_build_object('success', true, 'username', u.username, 'student_id', NULL), u.id"
            " FROM auth_user u WHERE u.username = ANY(%s) AND NOT EXISTS"
            " (SELECT 1 FROM core_auditlog a WHERE a.user_id = u.id AND a.action = 'login.success')",
            (AUDIT_IP, AUDIT_UA, list(USERS)))
        return self.users

    # -- exams -----------------------------------------------------------------------------------
    def exam_ids(self):
        return [str(self.uuid("exam", j)) for j in range(1, MAX_EXAMS_PER_SCENARIO + 1)]

    def purge(self):
        """Delete this scenario's exams and everything hanging off them (children first: the
        foreign keys have no ON DELETE)."""
        cur = self.cur
        exams = self.exam_ids()
        copies = "SELECT id FROM exams_copy WHERE exam_id = ANY(%(exams)s::uuid[])"
        deleted = 0
        for table in ("grading_annotation", "grading_gradingevent", "grading_copylock", "grading_draftstate",
                      "grading_questionremark", "grading_score", "exams_copy_booklets"):
            if table in self.tables:
                cur.execute("DELETE FROM %s WHERE copy_id IN (%s)" % (table, copies), {"exams": exams})
                deleted += cur.rowcount
        if "exams_examdocumentset" in self.tables:
            docs = ("SELECT d.id FROM exams_examdocument d JOIN exams_examdocumentset s ON s.id = d.document_set_id"
                    " WHERE s.exam_id = ANY(%(exams)s::uuid[])")
            extractions = "SELECT id FROM exams_documenttextextraction WHERE document_id IN (%s)" % docs
            cur.execute("DELETE FROM exams_documentchunk WHERE extraction_id IN (%s)" % extractions, {"exams": exams})
            cur.execute("DELETE FROM exams_documentpage WHERE extraction_id IN (%s)" % extractions, {"exams": exams})
            cur.execute("DELETE FROM exams_documenttextextraction WHERE document_id IN (%s)" % docs, {"exams": exams})
            cur.execute("DELETE FROM grading_annotationtemplate WHERE exam_id = ANY(%(exams)s::uuid[])", {"exams": exams})
            cur.execute("DELETE FROM exams_examdocument WHERE id IN (%s)" % docs, {"exams": exams})
            cur.execute("DELETE FROM exams_examdocumentset WHERE exam_id = ANY(%(exams)s::uuid[])", {"exams": exams})
            cur.execute("DELETE FROM exams_exampdf WHERE exam_id = ANY(%(exams)s::uuid[])", {"exams": exams})
        for table, column in (("exams_copy", "exam_id"), ("exams_booklet", "exam_id"),
                              ("exams_exam_correctors", "exam_id"), ("exams_exam", "id")):
            cur.execute("DELETE FROM %s WHERE %s = ANY(%%(exams)s::uuid[])" % (table, column), {"exams": exams})
            deleted += cur.rowcount
        return deleted

    def create_exam(self, j=1, name=None, days_ago=7, pages_per_booklet=4, upload_mode="BATCH_A3"):
        """Insert exam number ``j`` of the scenario (with its three correctors); returns its id. A BATCH_A3 exam
        (Korrigo's default) has its scanned PDF under exams/source/ and is processed (split into booklets);
        an INDIVIDUAL_A4 one (HEAD only) has no PDF of its own."""
        exam_id = str(self.uuid("exam", j))
        name = name or "Bac blanc de mathématiques (%s)" % self.scenario
        structure = json.dumps([
            {"id": "ex1", "label": "Exercice 1", "points": 6, "questions": [{"id": "1a", "points": 3}, {"id": "1b", "points": 3}]},
            {"id": "ex2", "label": "Exercice 2", "points": 8, "questions": [{"id": "2a", "points": 4}, {"id": "2b", "points": 4}]},
            {"id": "ex3", "label": "Exercice 3", "points": 6, "questions": [{"id": "3", "points": 6}]},
        ])
        columns = ["id", "name", "date", "pdf_source", "is_processed", "grading_structure", "pages_per_booklet"]
        if upload_mode not in ("BATCH_A3", "INDIVIDUAL_A4"):
            raise ValueError("upload_mode must be BATCH_A3 or INDIVIDUAL_A4")
        batch = upload_mode == "BATCH_A3"
        values = ["%(id)s", "%(name)s", "current_date - %(days)s", "%(pdf)s", "%(processed)s",
                  "%(structure)s::jsonb", "%(pages)s"]
        if self.version == "head":
            columns += ["students_csv", "upload_mode", "created_at", "updated_at", "results_released_at"]
            values += ["NULL", "%(mode)s", "now() - (%(days)s + 1) * interval '1 day'",
                       "now() - (%(days)s + 1) * interval '1 day'", "NULL"]
        self.cur.execute("INSERT INTO exams_exam (%s) VALUES (%s)" % (", ".join(columns), ", ".join(values)),
                         {"id": exam_id, "name": name, "days": days_ago, "structure": structure,
                          "pages": pages_per_booklet, "mode": upload_mode, "processed": batch,
                          "pdf": "exams/source/scan_%s_%d.pdf" % (self.scenario, j) if batch else None})
        self.cur.execute("INSERT INTO exams_exam_correctors (exam_id, user_id) SELECT %s, id FROM auth_user"
                         " WHERE username = ANY(%s) ORDER BY id", (exam_id, list(TEACHERS)))
        return exam_id

    # -- plan machinery --------------------------------------------------------------------------
    def _ensure_temp(self):
        if self._temp_ready:
            return
        id_cols = ", ".join("%s uuid" % kind for kind in ID_KINDS)
        self.cur.execute("CREATE TEMP TABLE _seed_ids (grp text NOT NULL, i integer NOT NULL, %s,"
                         " PRIMARY KEY (grp, i)) ON COMMIT DROP" % id_cols)
        self.cur.execute("CREATE TEMP TABLE _seed_plan (%s) ON COMMIT DROP"
                         % ", ".join("%s %s" % col for col in PLAN_COLUMNS))
        self._temp_ready = True

    def _taken_prefixes(self):
        if self._prefixes is None:
            # Imported copies are IMPORT-<8 hex of the uuid>, 8f16b75's uploads <8 hex of a uuid4>: keep both unique.
            self.cur.execute("SELECT lower(CASE WHEN anonymous_id LIKE 'IMPORT-%' THEN substr(anonymous_id, 8, 8)"
                             " ELSE anonymous_id END) FROM exams_copy"
                             " WHERE anonymous_id LIKE 'IMPORT-%' OR anonymous_id ~ '^[0-9A-F]{8}$'")
            self._prefixes = {row[0] for row in self.cur.fetchall()}
        return self._prefixes

    def load_ids(self, group, n, kinds=ID_KINDS):
        """uuid5 ids for copies 1..n of ``group``: kind K of copy i is named
        ``f"{scenario}:{group}-{K}:{i}"`` (``copy`` is always loaded)."""
        self._ensure_temp()
        kinds = set(kinds) | {"copy"}
        unknown = kinds - set(ID_KINDS)
        if unknown:
            raise ValueError("unknown id kinds %s" % sorted(unknown))
        makers = {k: _Uuid5Series("%s:%s-%s:" % (self.scenario, group, k)) for k in ID_KINDS if k in kinds}
        taken = self._taken_prefixes()
        copy_maker = makers["copy"]
        buf = io.StringIO()
        for i in range(1, n + 1):
            suffix = str(i)
            copy_hex = copy_maker(suffix)
            attempt = 0
            while copy_hex[:8] in taken:
                attempt += 1
                copy_hex = copy_maker("%d/%d" % (i, attempt))
            taken.add(copy_hex[:8])
            row = [group, suffix, copy_hex]
            for kind in ID_KINDS[1:]:
                row.append(makers[kind](suffix) if kind in makers else "\\N")
            buf.write("\t".join(row))
            buf.write("\n")
        buf.seek(0)
        self.cur.copy_expert("COPY _seed_ids (grp, i, %s) FROM STDIN" % ", ".join(ID_KINDS), buf)

    def plan(self, group, n, params=None, **exprs):
        """Add copies 1..n of ``group`` to the plan. ``exprs`` maps plan columns to SQL
        expressions over ``g.i`` (1..n), ``s.<id kind>``, ``%(n)s`` and ``self.params()``;
        ids, anonymous_id and exam_id default from the loaded ids."""
        unknown = set(exprs) - set(PLAN_NAMES)
        if unknown:
            raise ValueError("unknown plan columns %s" % sorted(unknown))
        defaults = {
            "grp": "%(grp)s", "i": "g.i", "exam_id": "%(exam)s::uuid", "copy_id": "s.copy", "origin": "'batch'",
            "anonymous_id": "NULL::text", "booklet_id": "s.booklet", "booklet2_id": "s.booklet2",
            "exampdf_id": "s.exampdf",
            "pages": "4", "lock_token": "s.token", "draft_client": "s.client",
            "ann1_id": "s.ann1", "ann2_id": "s.ann2", "ev_import": "s.ev_import",
            "ev_validate": "s.ev_validate", "ev_lock": "s.ev_lock", "ev_unlock": "s.ev_unlock",
            "ev_finalize": "s.ev_finalize", "ev_ann1": "s.ev_ann1", "ev_ann2": "s.ev_ann2",
            "import_filename": "'scan_' || lpad((g.i)::text, greatest(5, length((g.i)::text)), '0') || '.pdf'",
            "lock_row": "false", "lock_event": "false", "retries": "0", "final_pdf": "false",
        }
        defaults.update(exprs)
        origin = exprs.get("origin", "'batch'")
        if origin.startswith("'") and origin.strip("'") not in ORIGINS:
            raise ValueError("origin must be one of %s (an SQL literal such as \"'batch'\")" % ", ".join(ORIGINS))
        columns = [c for c in PLAN_NAMES if c in defaults]
        values = dict(self.params(), **(params or {}))
        values.update({"grp": group, "n": n})
        values.setdefault("exam", self.exam_ids()[0])
        self.cur.execute(
            "INSERT INTO _seed_plan (%s) SELECT %s FROM generate_series(1, %%(n)s) AS g(i)"
            " JOIN _seed_ids s ON s.grp = %%(grp)s AND s.i = g.i"
            % (", ".join(columns), ", ".join(defaults[c] for c in columns)), values)
        return self.cur.rowcount

    def plan_copy_ids(self, group):
        self.cur.execute("SELECT copy_id::text FROM _seed_plan WHERE grp = %s ORDER BY i", (group,))
        return [row[0] for row in self.cur.fetchall()]

    def _replica_role(self, on):
        """SET LOCAL session_replication_role (superuser only); False when not allowed."""
        import psycopg2

        self.cur.execute("SAVEPOINT ks_bulk")
        try:
            self.cur.execute("SET LOCAL session_replication_role = %s", ("replica" if on else "origin",))
        except psycopg2.Error:
            self.cur.execute("ROLLBACK TO SAVEPOINT ks_bulk")
            return False
        self.cur.execute("RELEASE SAVEPOINT ks_bulk")
        return True

    def verify_foreign_keys(self, tables):
        """Set-based check of every foreign key of ``tables`` (used after a bulk load that skipped
        the per-row triggers). Raises SeedError on the first dangling reference."""
        cur = self.cur
        cur.execute(
            "SELECT c.conname, c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, af.attname"
            " FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]"
            " WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s) ORDER BY 1", (list(tables),))
        for name, child, column, parent, pcolumn in cur.fetchall():
            cur.execute('SELECT count(*) FROM "%s" c WHERE c."%s" IS NOT NULL AND NOT EXISTS'
                        ' (SELECT 1 FROM "%s" p WHERE p."%s" = c."%s")' % (child, column, parent, pcolumn, column))
            missing = cur.fetchone()[0]
            if missing:
                raise SeedError("foreign key %s violated by %d row(s) of %s" % (name, missing, child))

    def begin_bulk(self, count):
        """Large loads (``count`` or the scenario's previous rows >= BULK_THRESHOLD copies) skip the
        per-row foreign-key triggers (session_replication_role = replica, when the role may set it);
        end_bulk() then verifies every foreign key with one anti-join each. Same end state; the
        deferred checks at COMMIT would otherwise dominate the load time."""
        self.cur.execute("SELECT count(*) FROM exams_copy WHERE exam_id = ANY(%s::uuid[])", (self.exam_ids(),))
        previous = self.cur.fetchone()[0]
        if max(count or 0, previous) < BULK_THRESHOLD:
            return False
        self.bulk = self._replica_role(True)
        return self.bulk

    def end_bulk(self):
        if self.bulk:
            self._replica_role(False)
            self.verify_foreign_keys([t for t in DATA_TABLES if t in self.tables])
            self.bulk = False

    def _resolve_origins(self):
        """What each creation path leaves behind, written into the plan: no booklet for an individual upload, no
        validation of a merge, a second booklet only for a merge, anonymous ids as each path makes them (import:
        IMPORT-<8 hex of the uuid>; HEAD uploads and merges: <4 hex of the exam>-NNN, numbered within the exam,
        with a 6-hex suffix when taken; 8f16b75 uploads and merges: 8 hex of a uuid), batch booklet numbers."""
        cur = self.cur
        cur.execute("SELECT array_agg(DISTINCT origin) FROM _seed_plan WHERE origin <> ALL(%s)", (list(ORIGINS),))
        unknown = cur.fetchone()[0]
        if unknown:
            raise SeedError("unknown origin(s) %s: one of %s" % (unknown, ", ".join(ORIGINS)))
        if self.version != "head":
            cur.execute("SELECT count(*) FROM _seed_plan WHERE origin = 'individual'")
            if cur.fetchone()[0]:
                raise SeedError("individual uploads (INDIVIDUAL_A4) exist on HEAD only")
        cur.execute("UPDATE _seed_plan SET booklet_id = NULL, booklet2_id = NULL WHERE origin = 'individual'")
        cur.execute("UPDATE _seed_plan SET validated_at = NULL, validator_id = NULL WHERE origin = 'merge'")
        cur.execute("UPDATE _seed_plan SET booklet2_id = NULL WHERE origin <> 'merge' OR booklet_id IS NULL")
        cur.execute(
            "WITH numbered AS ("
            "  SELECT p.grp, p.i,"
            "         row_number() OVER w + (SELECT count(*) FROM exams_copy x WHERE x.exam_id = p.exam_id) AS seq,"
            "         sum(CASE WHEN p.booklet2_id IS NOT NULL THEN 2 WHEN p.booklet_id IS NOT NULL THEN 1 ELSE 0 END)"
            "             OVER w - CASE WHEN p.booklet2_id IS NOT NULL THEN 2 ELSE 1 END"
            "             + (SELECT count(*) FROM exams_booklet y WHERE y.exam_id = p.exam_id) AS booklets_before"
            "    FROM _seed_plan p WINDOW w AS (PARTITION BY p.exam_id ORDER BY p.grp, p.i))"
            " UPDATE _seed_plan p SET booklet_index = n.booklets_before + 1,"
            "   anonymous_id = coalesce(p.anonymous_id, CASE"
            "     WHEN p.origin = 'import' THEN 'IMPORT-' || upper(left(p.copy_id::text, 8))"
            "     WHEN %(head)s THEN upper(left(replace(p.exam_id::text, '-', ''), 4)) || '-' || lpad((n.seq)::text, greatest(3, length((n.seq)::text)), '0')"
            "     ELSE upper(left(p.copy_id::text, 8)) END)"
            " FROM numbered n WHERE n.grp = p.grp AND n.i = p.i", {"head": self.version == "head"})
        cur.execute(
            "UPDATE _seed_plan p SET anonymous_id = left(p.anonymous_id, 4) || '-'"
            " || upper(left(replace(p.copy_id::text, '-', ''), 6))"
            " WHERE p.origin <> 'import' AND %(head)s"
            "   AND EXISTS (SELECT 1 FROM exams_copy x WHERE x.anonymous_id = p.anonymous_id)",
            {"head": self.version == "head"})

    def materialize(self):
        """Write every planned copy with its booklet, events, lock, draft and annotations.
        Returns {table: rows inserted}."""
        cur = self.cur
        counts = {}
        self._resolve_origins()
        extra_cols, extra_vals = "", ""
        if self.version == "head":
            extra_cols, extra_vals = ", subject_variant, llm_summary", ", NULL, NULL"
        cur.execute(
            "INSERT INTO exams_copy (id, anonymous_id, final_pdf, status, exam_id, is_identified, student_id,"
            " graded_at, locked_at, locked_by_id, validated_at, pdf_source, grading_error_message,"
            " grading_retries, assigned_corrector_id, dispatch_run_id, assigned_at, global_appreciation%s)"
            " SELECT copy_id, anonymous_id,"
            " CASE WHEN final_pdf THEN 'copies/final/copy_' || copy_id || '_corrected.pdf' END,"
            " status, exam_id, false, NULL, graded_at,"
            " CASE WHEN status = 'LOCKED' THEN locked_at END,"
            " CASE WHEN status = 'LOCKED' THEN lock_owner_id END,"
            " validated_at,"
            " CASE origin WHEN 'import' THEN 'copies/source/copy_' || copy_id || '.pdf'"
            "             WHEN 'individual' THEN 'exams/individual/' || import_filename ELSE '' END,"
            " error_message, coalesce(retries, 0),"
            " corrector_id, dispatch_run_id, assigned_at, appreciation%s"
            " FROM _seed_plan ORDER BY copy_id" % (extra_cols, extra_vals))
        counts["exams_copy"] = cur.rowcount
        # Imported: one booklet 1..n, copies/pages/<copy>/pNNN.png (Matrix 2x). Batch and merge: the exam's split
        # (PDFSplitter, dpi 150), booklet k holding the exam's pages (k-1)*n+1..k*n as
        # booklets/<exam>/<booklet>/page_NNN.png (global page numbers); a merged copy has two such booklets.
        cur.execute(
            "WITH b AS ("
            "  SELECT p.booklet_id AS id, p.booklet_index AS k, p.* FROM _seed_plan p WHERE p.booklet_id IS NOT NULL"
            "  UNION ALL SELECT p.booklet2_id, p.booklet_index + 1, p.* FROM _seed_plan p WHERE p.booklet2_id IS NOT NULL"
            "), placed AS ("
            "  SELECT b.*, CASE WHEN b.origin = 'import' THEN 1 ELSE (b.k - 1) * b.pages + 1 END AS first_page FROM b"
            ")"
            " INSERT INTO exams_booklet (id, start_page, end_page, header_image, student_name_guess, exam_id, pages_images)"
            " SELECT x.id, x.first_page, x.first_page + x.pages - 1, NULL,"
            " CASE WHEN x.origin = 'import' THEN NULL ELSE 'Booklet ' || x.k END, x.exam_id,"
            " coalesce((SELECT jsonb_agg(CASE WHEN x.origin = 'import'"
            "                                 THEN 'copies/pages/' || x.copy_id || '/p' || lpad((g.n)::text, greatest(3, length((g.n)::text)), '0') || '.png'"
            "                                 ELSE 'booklets/' || x.exam_id || '/' || x.id || '/page_'"
            "                                      || lpad((x.first_page + g.n)::text,"
            "                                              greatest(3, length((x.first_page + g.n)::text)), '0')"
            "                                      || '.png' END ORDER BY g.n)"
            "           FROM generate_series(0, x.pages - 1) AS g(n)), '[]'::jsonb)"
            " FROM placed x ORDER BY x.id")
        counts["exams_booklet"] = cur.rowcount
        cur.execute("INSERT INTO exams_copy_booklets (copy_id, booklet_id)"
                    " SELECT copy_id, booklet_id FROM _seed_plan WHERE booklet_id IS NOT NULL"
                    " UNION ALL SELECT copy_id, booklet2_id FROM _seed_plan WHERE booklet2_id IS NOT NULL ORDER BY 1, 2")
        counts["exams_copy_booklets"] = cur.rowcount
        if "exams_exampdf" in self.tables:
            cur.execute(
                "INSERT INTO exams_exampdf (id, pdf_file, student_identifier, uploaded_at, exam_id)"
                " SELECT exampdf_id, 'exams/individual/' || import_filename, regexp_replace(import_filename, '[.]pdf$', ''),"
                " coalesce(imported_at, now()), exam_id FROM _seed_plan WHERE origin = 'individual' ORDER BY exampdf_id")
            counts["exams_exampdf"] = cur.rowcount
        cur.execute(
            "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
            " SELECT ev_import, 'IMPORT', imported_at, jsonb_build_object('filename', import_filename, 'pages', pages),"
            "        importer_id, copy_id FROM _seed_plan WHERE origin = 'import' AND imported_at IS NOT NULL"
            " UNION ALL SELECT ev_validate, 'VALIDATE', validated_at, '{}'::jsonb, validator_id, copy_id"
            "        FROM _seed_plan WHERE validated_at IS NOT NULL AND origin <> 'merge'"
            "          AND NOT (origin = 'batch' AND %(head)s)"
            " UNION ALL SELECT ev_lock, 'LOCK', locked_at, jsonb_build_object('token_prefix', left(lock_token::text, 8)),"
            "        lock_owner_id, copy_id FROM _seed_plan WHERE lock_event AND locked_at IS NOT NULL"
            " UNION ALL SELECT ev_unlock, 'UNLOCK', unlock_at, '{}'::jsonb, lock_owner_id, copy_id"
            "        FROM _seed_plan WHERE unlock_at IS NOT NULL"
            " UNION ALL SELECT ev_ann1, 'CREATE_ANN', ann_at, jsonb_build_object('annotation_id', ann1_id::text, 'page', 0),"
            "        grader_id, copy_id FROM _seed_plan WHERE ann_at IS NOT NULL"
            " UNION ALL SELECT ev_ann2, 'CREATE_ANN', ann_at + interval '1 minute',"
            "        jsonb_build_object('annotation_id', ann2_id::text, 'page', 1), grader_id, copy_id"
            "        FROM _seed_plan WHERE ann_at IS NOT NULL"
            " UNION ALL SELECT ev_finalize, 'FINALIZE', graded_at,"
            "        jsonb_build_object('final_score', round((coalesce(ann1_delta, 0) + coalesce(ann2_delta, 0))::numeric, 1),"
            "                           'retries', retries),"
            "        grader_id, copy_id FROM _seed_plan WHERE status = 'GRADED' AND graded_at IS NOT NULL"
            " ORDER BY 6, 3", {"head": self.version == "head"})
        counts["grading_gradingevent"] = cur.rowcount
        cur.execute("INSERT INTO grading_copylock (token, locked_at, expires_at, copy_id, owner_id)"
                    " SELECT lock_token, locked_at, expires_at, copy_id, lock_owner_id FROM _seed_plan"
                    " WHERE lock_row ORDER BY copy_id")
        counts["grading_copylock"] = cur.rowcount
        cur.execute(
            "INSERT INTO grading_draftstate (id, payload, lock_token, client_id, version, updated_at, copy_id, owner_id)"
            " SELECT draft_id, jsonb_build_object("
            "   'annotations', jsonb_build_array(jsonb_build_object('page_index', 0, 'x', 0.12, 'y', 0.34,"
            "       'w', 0.2, 'h', 0.05, 'type', 'COMMENT', 'content', 'Justifier ce passage')),"
            "   'comment', 'Brouillon en cours'),"
            " CASE WHEN lock_row THEN lock_token END, draft_client, coalesce(draft_version, 1),"
            " coalesce(draft_updated_at, locked_at), copy_id, coalesce(lock_owner_id, grader_id)"
            " FROM _seed_plan WHERE draft_id IS NOT NULL ORDER BY copy_id")
        counts["grading_draftstate"] = cur.rowcount
        cur.execute(
            "INSERT INTO grading_annotation (id, page_index, x, y, w, h, content, type, score_delta,"
            " created_at, updated_at, copy_id, created_by_id, version)"
            " SELECT ann1_id, 0, 0.1 + (i % 5) * 0.1, 0.2, 0.25, 0.06, 'Bonne démarche', 'BONUS', ann1_delta,"
            "        ann_at, ann_at, copy_id, grader_id, 0 FROM _seed_plan WHERE ann_at IS NOT NULL"
            " UNION ALL SELECT ann2_id, 1, 0.15, 0.5 + (i % 4) * 0.1, 0.3, 0.08, 'Erreur de calcul', 'ERROR',"
            "        ann2_delta, ann_at + interval '1 minute', ann_at + interval '1 minute', copy_id, grader_id, 0"
            "        FROM _seed_plan WHERE ann_at IS NOT NULL ORDER BY 12")
        counts["grading_annotation"] = cur.rowcount
        cur.execute("DELETE FROM _seed_plan")
        return counts


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

# Shared expression fragments (SQL) for the "validated and dispatched" history of a copy.
_TEACHER_BY_I = "(ARRAY[%(martin)s, %(durand)s, %(bernard)s]::integer[])[1 + (g.i - 1) %% 3]"


@scenario("baseline", "one exam, copies in every normal status with complete, consistent trails")
def build_baseline(ctx, count):
    """Copies cycle through 10 slots: 0-1 STAGING (imported 10 min..5 h ago on HEAD, batch-uploaded on 8f16b75;
    pages present, awaiting validation: normal), 2-4 READY (4: merged), 5-7 GRADED; 8-9 LOCKED with an active
    lock on 8f16b75, READY on HEAD (no lock service there). Copies of slots 2-9 come from the exam's batch upload.
    On 8f16b75 the copies of slot 2 also carry a past LOCK/UNLOCK pair
    and GRADED copies the LOCK that preceded finalize (finalize deleted the lock row)."""
    n = count or 10
    exam = ctx.create_exam(1)
    ctx.load_ids("copy", n)
    head = ctx.version == "head"
    slot = "((g.i - 1) %% 10)"
    status = ("CASE WHEN {s} < 2 THEN 'STAGING' WHEN {s} < 5 THEN 'READY' WHEN {s} < 8 THEN 'GRADED'"
              " ELSE {locked} END").format(s=slot, locked="'READY'" if head else "'LOCKED'")
    older = "now() - interval '2 days' - ((g.i * 7) %% 720) * interval '1 minute'"
    imported = ("CASE WHEN {s} < 2 THEN now() - (10 + (g.i * 37) %% 290) * interval '1 minute' ELSE {o} END"
                .format(s=slot, o=older))
    validated = "CASE WHEN {s} >= 2 THEN {o} + interval '20 minutes' END".format(s=slot, o=older)
    assigned = "CASE WHEN {s} >= 2 THEN {o} + interval '80 minutes' END".format(s=slot, o=older)
    graded_slot = "{s} BETWEEN 5 AND 7".format(s=slot)
    ann_at = "CASE WHEN {g} THEN {o} + interval '3 hours' END".format(g=graded_slot, o=older)
    # HEAD: STAGING copies with pages come from import_pdf (a batch copy with pages is READY at once), the rest
    # from the exam's batch upload, slot 4 from a merge. 8f16b75: batch uploads are STAGING until validated.
    origin = ("CASE WHEN {s} < 2 THEN {staging} WHEN {s} = 4 THEN 'merge' ELSE 'batch' END"
              .format(s=slot, staging="'import'" if head else "'batch'"))
    exprs = dict(
        origin=origin, status=status, imported_at=imported, importer_id="%(admin)s",
        validated_at=validated, validator_id="CASE WHEN {s} >= 2 THEN %(admin)s END".format(s=slot),
        corrector_id="CASE WHEN {s} >= 2 THEN {t} END".format(s=slot, t=_TEACHER_BY_I),
        assigned_at=assigned,
        dispatch_run_id="CASE WHEN {s} >= 2 THEN %(dispatch_run)s::uuid END".format(s=slot),
        grader_id="CASE WHEN {g} THEN {t} END".format(g=graded_slot, t=_TEACHER_BY_I),
        ann_at=ann_at,
        graded_at="CASE WHEN {g} THEN {o} + interval '3 hours 20 minutes' END".format(g=graded_slot, o=older),
        retries="CASE WHEN {g} THEN 1 ELSE 0 END".format(g=graded_slot),
        final_pdf=graded_slot,
        appreciation="CASE WHEN {g} THEN 'Travail sérieux, quelques erreurs de calcul.' END".format(g=graded_slot),
        ann1_delta="CASE WHEN {g} THEN 8 + g.i %% 8 END".format(g=graded_slot),
        ann2_delta="CASE WHEN {g} THEN -(g.i %% 3) END".format(g=graded_slot),
    )
    if not head:
        exprs.update(
            lock_owner_id="CASE WHEN {s} = 2 OR {s} >= 5 THEN {t} END".format(s=slot, t=_TEACHER_BY_I),
            locked_at=("CASE WHEN {s} = 2 THEN {o} + interval '2 hours'"
                       " WHEN {g} THEN {o} + interval '2 hours 55 minutes'"
                       " WHEN {s} >= 8 THEN now() - (1 + g.i %% 8) * interval '1 minute' END")
            .format(s=slot, o=older, g=graded_slot),
            expires_at="CASE WHEN {s} >= 8 THEN now() - (1 + g.i %% 8) * interval '1 minute' + interval '10 minutes' END"
            .format(s=slot),
            lock_row="{s} >= 8".format(s=slot),
            lock_event="{s} = 2 OR {s} >= 5".format(s=slot),
            unlock_at="CASE WHEN {s} = 2 THEN {o} + interval '2 hours 15 minutes' END".format(s=slot, o=older),
            draft_id="CASE WHEN {s} = 9 THEN s.draft END".format(s=slot),
            draft_version="CASE WHEN {s} = 9 THEN 2 END".format(s=slot),
            draft_updated_at="CASE WHEN {s} = 9 THEN now() - interval '30 seconds' END".format(s=slot),
        )
    ctx.plan("copy", n, **exprs)
    ctx.cur.execute("SELECT status, copy_id::text FROM _seed_plan ORDER BY i")
    by_status = {}
    for status_value, copy_id in ctx.cur.fetchall():
        by_status.setdefault(status_value, []).append(copy_id)
    counts = ctx.materialize()
    return {"exam_id": exam, "copy_ids_by_status": by_status, "counts": counts}


@scenario("locks", "expired copy locks (incident) next to active locks and free READY copies")
def build_locks(ctx, count):
    """``count`` (default 5) LOCKED copies whose lock expired 5.5 to 40 minutes ago (locked_at =
    expires_at - 10 min, or up to 4.5 min older when a heartbeat had extended the lock, so every
    expired lock is younger than 55 min; owners cycle through the
    three teachers; copy.locked_at/locked_by_id match; a LOCK event at locked_at; a draft for copies
    1, 4, 7, ...), plus 2 LOCKED copies with active locks (locked 10 min ago expiring in 8 min, and
    locked 3 h ago, heartbeat-renewed, expiring in 9 min) and 3 READY copies without lock. On HEAD
    the locks are legacy rows from before the no-lock workflow (same shape); the READY copy 1 has a
    past LOCK/UNLOCK pair on 8f16b75 only."""
    n = count or 5
    exam = ctx.create_exam(1, name="Bac blanc de physique (locks)")
    kinds = ("copy", "booklet", "token", "ev_import", "ev_validate", "ev_lock", "ev_unlock", "draft", "client")
    ctx.load_ids("expired", n, kinds)
    ctx.load_ids("active", 2, kinds)
    ctx.load_ids("ready", 3, kinds)
    teacher = _TEACHER_BY_I
    spread = "least(%(n)s, 1000)"
    # expires_at spread over [now - 40 min, now - 5.5 min]; locked_at = expires_at - 10 min (TTL of
    # acquire_lock) minus 0/1.5/3/4.5 min of heartbeat extension: every expired lock was taken less
    # than 55 minutes ago (korrigo_facts' default lock age threshold is 60 minutes).
    expires = ("now() - (330 + (2070 * ((g.i - 1) %% {m}))::numeric / greatest({m} - 1, 1)) * interval '1 second'"
               .format(m=spread))
    locked = "({e}) - interval '10 minutes' - ((g.i - 1) %% 4) * interval '90 seconds'".format(e=expires)
    history = dict(
        importer_id="%(admin)s", imported_at="({l}) - interval '1 day' - (g.i %% 300) * interval '1 minute'",
        validator_id="%(admin)s", validated_at="({l}) - interval '1 day' - (g.i %% 300) * interval '1 minute' + interval '25 minutes'",
        corrector_id=teacher, dispatch_run_id="%(dispatch_run)s::uuid",
        assigned_at="({l}) - interval '1 day' - (g.i %% 300) * interval '1 minute' + interval '85 minutes'",
    )
    expired = {k: v.format(l=locked) for k, v in history.items()}
    expired.update(
        status="'LOCKED'", lock_owner_id=teacher, locked_at=locked, expires_at=expires,
        lock_row="true", lock_event="true",
        draft_id="CASE WHEN (g.i - 1) %% 3 = 0 THEN s.draft END",
        draft_version="1 + g.i %% 4",
        draft_updated_at="greatest(({l}) + interval '1 minute', ({e}) - interval '10 minutes 20 seconds')"
        .format(l=locked, e=expires),
    )
    ctx.plan("expired", n, **expired)

    active_locked = "CASE g.i WHEN 1 THEN now() - interval '10 minutes' ELSE now() - interval '3 hours' END"
    active = {k: v.format(l=active_locked) for k, v in history.items()}
    active.update(
        status="'LOCKED'", lock_owner_id="CASE g.i WHEN 1 THEN %(martin)s ELSE %(durand)s END",
        corrector_id="CASE g.i WHEN 1 THEN %(martin)s ELSE %(durand)s END",
        locked_at=active_locked,
        expires_at="CASE g.i WHEN 1 THEN now() + interval '8 minutes' ELSE now() + interval '9 minutes' END",
        lock_row="true", lock_event="true",
        draft_id="CASE WHEN g.i = 2 THEN s.draft END", draft_version="12",
        draft_updated_at="now() - interval '1 minute'",
    )
    ctx.plan("active", 2, **active)

    ready_base = "now() - interval '1 day' - g.i * interval '13 minutes'"
    ready = {k: v.format(l=ready_base) for k, v in history.items()}
    ready.update(status="'READY'")
    if ctx.version == "8f16b75":
        ready.update(
            lock_owner_id="CASE WHEN g.i = 1 THEN %(bernard)s END",
            locked_at="CASE WHEN g.i = 1 THEN now() - interval '5 hours' END",
            unlock_at="CASE WHEN g.i = 1 THEN now() - interval '4 hours 40 minutes' END",
            lock_event="g.i = 1",
        )
    ctx.plan("ready", 3, **ready)

    ids = {grp: ctx.plan_copy_ids(grp) for grp in ("expired", "active", "ready")}
    ctx.cur.execute("SELECT copy_id::text FROM _seed_plan WHERE draft_id IS NOT NULL ORDER BY grp, i")
    draft_ids = [row[0] for row in ctx.cur.fetchall()]
    counts = ctx.materialize()
    return {
        "exam_id": exam,
        "expired_copy_ids": ids["expired"],
        "active_copy_ids": ids["active"],
        "ready_copy_ids": ids["ready"],
        "draft_copy_ids": draft_ids,
        "counts": counts,
    }


# --------------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------------

def seed(conn, scenario_name, count=None):
    """Seed ``scenario_name`` (replacing that scenario's previous rows) and commit. Returns the ids
    created: always ``scenario``, ``version``, ``users`` ({username: id}) plus the scenario's keys."""
    if scenario_name not in SCENARIOS:
        raise SeedError("unknown scenario %r (known: %s)" % (scenario_name, ", ".join(sorted(SCENARIOS))))
    if count is not None and count < 1:
        raise SeedError("--count must be >= 1")
    with common.transaction(conn) as cur:
        ctx = SeedContext(conn, cur, scenario_name)
        cur.execute("SET LOCAL synchronous_commit = off")
        ctx.ensure_users()
        ctx.begin_bulk(count)
        ctx.purge()
        result = SCENARIOS[scenario_name]["build"](ctx, count)
        ctx.end_bulk()
    out = {"scenario": scenario_name, "version": ctx.version, "count": count, "users": dict(ctx.users)}
    out.update(result)
    return out


def reset(conn):
    """TRUNCATE every Korrigo data table (users included), restart identities; schema and
    django_migrations stay. Commits."""
    with common.transaction(conn) as cur:
        present = common.existing_tables(cur)
        tables = [t for t in DATA_TABLES if t in present]
        if tables:
            cur.execute("TRUNCATE %s RESTART IDENTITY CASCADE" % ", ".join(tables))
    return tables


def _summarize(value, limit=20):
    if isinstance(value, dict):
        return {k: _summarize(v, limit) for k, v in value.items()}
    if isinstance(value, list) and len(value) > limit:
        return {"count": len(value), "first": value[:5]}
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.seed",
                                     description="Seed the Korrigo stand-in database.")
    parser.add_argument("--dsn", default=None, help="default: $DATABASE_URL or %s" % common.DEFAULT_DSN)
    parser.add_argument("--reset", action="store_true", help="truncate every Korrigo table first")
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        help="scenario to seed (repeatable): %s" % ", ".join(sorted(SCENARIOS)))
    parser.add_argument("--count", type=int, default=None, help="scale the scenario's main group to N copies")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.add_argument("--full", action="store_true", help="with --json: do not abbreviate long id lists")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name in sorted(SCENARIOS):
            print("%-12s %s" % (name, SCENARIOS[name]["description"]))
        return 0
    if not args.reset and not args.scenario:
        parser.error("nothing to do: give --reset and/or --scenario NAME")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    import time

    conn = common.connect(args.dsn)
    summary = {"reset": None, "scenarios": []}
    try:
        if args.reset:
            summary["reset"] = reset(conn)
        for name in args.scenario:
            started = time.monotonic()
            result = seed(conn, name, args.count)
            result["seconds"] = round(time.monotonic() - started, 3)
            summary["scenarios"].append(result if args.full else _summarize(result))
            if not args.json:
                print("seeded %s (%s, %.2fs): %s" % (name, result["version"], result["seconds"],
                                                     json.dumps(result.get("counts", {}), sort_keys=True)))
    except SeedError as exc:
        print("seed: %s" % exc, file=sys.stderr)
        return 2
    finally:
        conn.close()
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True, default=common.json_default))
    return 0


if __name__ == "__main__":
    # Run the CLI from the imported module, where the scenario modules below registered themselves.
    from korrigo_stack import seed as _seed_module

    sys.exit(_seed_module.main())
else:
    # Scenario modules register themselves with @scenario when imported (one line each).
    from korrigo_stack import scenarios_finalize  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position
    from korrigo_stack import scenarios_audit, scenarios_latency  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position
    from korrigo_stack import scenarios_import  # noqa: E402,F401  pylint: disable=unused-import,wrong-import-position
