"""Create Korrigo's schema (like ``manage.py migrate`` would) for one of the two known versions.

    python3 -m korrigo_stack.migrate [--dsn DSN] [--version head|8f16b75] [--drop]
                                     [--create-database NAME]

API: ``migrate(conn, version, drop=False)``, ``create_database(admin_dsn, name, version)``.

The DDL is ``schema/<version>.sql``; ``django_migrations`` is created and filled with the migration
names of that version (67 at HEAD, 49 at 8f16b75) so the database looks migrated. Idempotent: an
already migrated database of the same version is left alone; a database holding the other version
or only part of the tables is refused (use ``--drop``). Concurrent callers serialize on an advisory
lock.
"""

import argparse
import json
import logging
import os
import sys

from korrigo_stack import common

logger = logging.getLogger("korrigo_stack.migrate")

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")
ADVISORY_LOCK_KEY = 0x6B6F7272  # 'korr'

TABLES = {
    "head": (
        "auth_user", "students_student", "exams_exam", "exams_booklet", "exams_copy",
        "exams_copy_booklets", "exams_exam_correctors", "exams_examdocumentset", "exams_examdocument",
        "exams_documenttextextraction", "exams_documentpage", "exams_documentchunk", "exams_exampdf",
        "grading_annotation", "grading_gradingevent", "grading_copylock", "grading_draftstate",
        "grading_questionremark", "grading_score", "grading_annotationtemplate",
        "grading_userannotation", "core_auditlog", "core_globalsettings", "core_userprofile",
    ),
    "8f16b75": (
        "auth_user", "students_student", "exams_exam", "exams_booklet", "exams_copy",
        "exams_copy_booklets", "exams_exam_correctors", "grading_annotation", "grading_gradingevent",
        "grading_copylock", "grading_draftstate", "grading_questionremark", "core_auditlog",
        "core_globalsettings", "core_userprofile",
    ),
}

# Migrations applied at 8f16b75 (49), in an order Django's planner can produce. The Django contrib
# apps (admin 3, auth 12, contenttypes 2, sessions 1) plus Korrigo's apps; HEAD adds the 18
# migrations named in the schema facts ("Migrations present in HEAD only").
MIGRATIONS_8F16B75 = [
    ("contenttypes", "0001_initial"),
    ("auth", "0001_initial"),
    ("admin", "0001_initial"),
    ("admin", "0002_logentry_remove_auto_add"),
    ("admin", "0003_logentry_add_action_flag_choices"),
    ("contenttypes", "0002_remove_content_type_name"),
    ("auth", "0002_alter_permission_name_max_length"),
    ("auth", "0003_alter_user_email_max_length"),
    ("auth", "0004_alter_user_username_opts"),
    ("auth", "0005_alter_user_last_login_null"),
    ("auth", "0006_require_contenttypes_0002"),
    ("auth", "0007_alter_validators_add_error_messages"),
    ("auth", "0008_alter_user_username_max_length"),
    ("auth", "0009_alter_user_last_name_max_length"),
    ("auth", "0010_alter_group_name_max_length"),
    ("auth", "0011_update_proxy_permissions"),
    ("auth", "0012_alter_user_first_name_max_length"),
    ("core", "0001_add_auditlog_model"),
    ("core", "0002_globalsettings"),
    ("core", "0003_userprofile"),
    ("exams", "0001_initial"),
    ("exams", "0002_booklet_pages_images_exam_grading_structure"),
    ("students", "0001_initial"),
    ("exams", "0003_copy_is_identified_copy_student"),
    ("exams", "0004_alter_booklet_header_image_alter_copy_final_pdf"),
    ("exams", "0005_add_copy_traceability_fields"),
    ("exams", "0006_copy_pdf_source"),
    ("exams", "0007_alter_exam_pdf_source"),
    ("exams", "0008_add_pdf_validators"),
    ("exams", "0009_add_advanced_pdf_validators"),
    ("exams", "0010_exam_correctors"),
    ("exams", "0011_exam_pages_per_booklet"),
    ("exams", "0012_alter_booklet_exam_alter_copy_exam"),
    ("exams", "0013_copy_grading_error_tracking"),
    ("exams", "0014_copy_performance_indexes"),
    ("exams", "0015_copy_dispatch_fields"),
    ("exams", "0016_remove_copy_exams_copy_status_idx_and_more"),
    ("grading", "0001_initial"),
    ("grading", "0002_refactor_annotation_and_add_grading_event"),
    ("grading", "0003_rename_grading_ann_copy_id_f6ec3e_idx_grading_ann_copy_id_35b843_idx_and_more"),
    ("grading", "0004_copylock"),
    ("grading", "0005_draftstate"),
    ("grading", "0006_copylock_idx_copylock_expires_at_and_more"),
    ("grading", "0007_annotation_optimistic_locking"),
    ("grading", "0008_questionremark"),
    ("grading", "0009_alter_questionremark_question_id_and_more"),
    ("identification", "0001_initial"),
    ("sessions", "0001_initial"),
    ("students", "0002_student_user"),
]

MIGRATIONS_HEAD_ONLY = [
    ("exams", "0017_add_upload_modes"),
    ("exams", "0018_add_exam_timestamps"),
    ("exams", "0019_add_results_released_at"),
    ("exams", "0020_add_subject_variant_to_copy"),
    ("exams", "0021_annotation_bank_and_documents"),
    ("exams", "0021_copy_llm_summary"),
    ("exams", "0022_copy_llm_summary"),
    ("grading", "0010_score"),
    ("grading", "0011_annotation_type_french"),
    ("grading", "0012_annotation_bank_and_documents"),
    ("students", "0003_remove_ine_add_date_naissance"),
    ("students", "0003_student_birth_date"),
    ("students", "0004_alter_student_birth_date"),
    ("students", "0004_rename_students_st_last_na_idx_students_st_last_na_b34e19_idx"),
    ("students", "0005_merge_20260211_1017"),
    ("students", "0006_remove_student_birth_date"),
    ("students", "0007_add_student_ordering"),
    ("students", "0008_increase_groupe_max_length"),
]

MIGRATIONS = {
    "8f16b75": MIGRATIONS_8F16B75,
    "head": MIGRATIONS_8F16B75 + MIGRATIONS_HEAD_ONLY,
}

# django.db.migrations.recorder.MigrationRecorder's table (BigAutoField, as Korrigo's
# DEFAULT_AUTO_FIELD).
DJANGO_MIGRATIONS_DDL = """
CREATE TABLE django_migrations (
    id bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY,
    app character varying(255) NOT NULL,
    name character varying(255) NOT NULL,
    applied timestamp with time zone NOT NULL,
    CONSTRAINT django_migrations_pkey PRIMARY KEY (id)
);
"""


class MigrateError(Exception):
    """The database cannot be brought to the asked version without --drop."""


def schema_sql(version):
    if version not in common.SCHEMA_VERSIONS:
        raise ValueError("unknown Korrigo schema version %r (known: %s)" % (version, ", ".join(common.SCHEMA_VERSIONS)))
    with open(os.path.join(SCHEMA_DIR, version + ".sql"), encoding="utf-8") as fh:
        return fh.read()


def _drop_all(cur):
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    tables = [row[0] for row in cur.fetchall()]
    if tables:
        from psycopg2 import sql

        cur.execute(sql.SQL("DROP TABLE {} CASCADE").format(
            sql.SQL(", ").join(sql.Identifier(t) for t in sorted(tables))))
    return tables


def _fill_django_migrations(cur, version):
    cur.execute("SELECT app, name FROM django_migrations")
    present = set(cur.fetchall())
    rows = [(app, name) for app, name in MIGRATIONS[version] if (app, name) not in present]
    for position, (app, name) in enumerate(rows):
        cur.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES (%s, %s, now() + %s * interval '15 milliseconds')",
            (app, name, position),
        )
    return len(rows)


def migrate(conn, version, drop=False):
    """Bring the database behind ``conn`` to Korrigo's schema ``version``; commits.

    Returns ``{'version', 'created', 'dropped', 'tables', 'migrations'}``.
    """
    if version not in common.SCHEMA_VERSIONS:
        raise ValueError("unknown Korrigo schema version %r" % (version,))
    expected = set(TABLES[version])
    other = set(TABLES["head"] if version == "8f16b75" else TABLES["8f16b75"]) - expected
    result = {"version": version, "created": False, "dropped": [], "tables": len(expected), "migrations": 0}
    with common.transaction(conn) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        if drop:
            result["dropped"] = _drop_all(cur)
        present = common.existing_tables(cur)
        korrigo_present = present & (expected | other)
        if not korrigo_present:
            cur.execute(schema_sql(version))
            if "django_migrations" not in present:
                cur.execute(DJANGO_MIGRATIONS_DDL)
            result["created"] = True
        else:
            missing = expected - present
            if missing:
                raise MigrateError("database holds part of Korrigo's schema; missing for %s: %s (use --drop)"
                                   % (version, ", ".join(sorted(missing))))
            found = common.detect_schema_version(conn)
            if found != version or (present & other):
                raise MigrateError("database holds Korrigo schema %s, asked for %s (use --drop)" % (found, version))
            if "django_migrations" not in present:
                cur.execute(DJANGO_MIGRATIONS_DDL)
        result["migrations"] = _fill_django_migrations(cur, version)
    if result["created"]:
        logger.info("Created Korrigo schema %s (%d tables, %d migrations recorded)",
                    version, len(expected), result["migrations"])
    else:
        logger.info("Korrigo schema %s already present, nothing to migrate", version)
    return result


def create_database(admin_dsn, name, version, drop=False):
    """Create database ``name`` (if absent) on the server of ``admin_dsn`` and migrate it to
    ``version``. Returns the DSN of the new database."""
    from psycopg2 import sql

    admin = common.connect(admin_dsn)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                logger.info("Created database %s", name)
    finally:
        admin.close()
    dsn = common.dsn_with_dbname(admin_dsn, name)
    conn = common.connect(dsn)
    try:
        migrate(conn, version, drop=drop)
    finally:
        conn.close()
    return dsn


def drop_database(admin_dsn, name):
    """Drop database ``name`` (if present) on the server of ``admin_dsn``, closing its sessions."""
    from psycopg2 import sql

    admin = common.connect(admin_dsn)
    try:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.migrate", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dsn", default=None, help="default: $DATABASE_URL or %s" % common.DEFAULT_DSN)
    parser.add_argument("--version", choices=common.SCHEMA_VERSIONS, default=None,
                        help="Korrigo schema version (default: $KORRIGO_SCHEMA_VERSION or head)")
    parser.add_argument("--drop", action="store_true", help="drop every table of the schema first")
    parser.add_argument("--create-database", metavar="NAME",
                        help="create database NAME on the server of --dsn and migrate it instead")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dsn = args.dsn or common.database_url()
    version = args.version or common.schema_version_env()
    try:
        if args.create_database:
            new_dsn = create_database(dsn, args.create_database, version, drop=args.drop)
            result = {"version": version, "database": args.create_database, "dsn": new_dsn}
        else:
            conn = common.connect(dsn)
            try:
                result = migrate(conn, version, drop=args.drop)
            finally:
                conn.close()
    except MigrateError as exc:
        print("migrate: %s" % exc, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
