"""Fixtures for the stand-in app's tests: a scratch PostgreSQL database when one is reachable.

The database tests create their own database (``ks_unit_<pid>``) on the server of
$KORRIGO_TEST_DSN, else $KORRIGO_DSN, else the stack's default DSN, and drop it afterwards; they are
skipped when no server answers (``make unit`` runs without the stack).
"""
import os
import sys

import pytest

STACK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "stack")
if STACK not in sys.path:
    sys.path.insert(0, STACK)

from korrigo_stack import common  # noqa: E402


def _admin_dsn():
    return os.environ.get("KORRIGO_TEST_DSN") or os.environ.get("KORRIGO_DSN") or common.DEFAULT_DSN


@pytest.fixture(scope="session")
def pg_server():
    psycopg2 = pytest.importorskip("psycopg2")
    dsn = _admin_dsn()
    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
    except psycopg2.OperationalError as exc:
        pytest.skip("no PostgreSQL for the stand-in DB tests at %s: %s" % (dsn, str(exc).strip().splitlines()[0]))
    return dsn


@pytest.fixture(scope="session")
def scratch_dsn(pg_server):
    """A fresh database (no schema) on the test server, dropped at the end of the session."""
    import psycopg2
    from psycopg2 import sql

    name = "ks_unit_%d" % os.getpid()
    admin = psycopg2.connect(pg_server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield common.dsn_with_dbname(pg_server, name)
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,))
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    admin.close()
