"""What releasing N expired locks costs through copylock, against the bare SQL doing the same work.

Usage: python benchmarks/bench_copylock.py [--count 100000] [--repeat 3]
(PYTHONPATH must hold .cache/collections and tests/stack; `make bench` sets it.) Runs in a database of its own
(korrigo_bench_copylock, created here): the stack's `korrigo` database is never reset. bench_locks.py (part of
`make bench`) measures the same and the whole playbook at 1k/10k/100k; this script is the module-level view.

Each measurement starts from a freshly seeded database and includes the commit (where Korrigo's deferred
foreign keys are checked):
- "statement": copylock's own statement (guards, UNLOCK events, audit rows) sent by hand over one
  connection: what the SQL itself costs;
- "module": the whole copylock module process (Python start-up, connection, version detection, advisory
  lock, that statement, result building): module / statement is the overhead of the module around its SQL;
- "minimal": DELETE the expired locks and UPDATE their copies with no guard and no trail: module / minimal
  is what the safety and the audit trail cost.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg2

from ansible_collections.korrigo.ops.plugins.modules import copylock
from korrigo_stack import migrate
from korrigo_stack import seed as stack_seed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_DSN = os.environ.get('KORRIGO_DSN', 'postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo')
DB = 'korrigo_bench_copylock'
DSN = ADMIN_DSN.rsplit('/', 1)[0] + '/' + DB
BARE_SQL = """
WITH released AS (DELETE FROM grading_copylock WHERE expires_at < now() RETURNING copy_id)
UPDATE exams_copy c SET status = 'READY', locked_at = NULL, locked_by_id = NULL
  FROM released r WHERE c.id = r.copy_id AND c.status = 'LOCKED'
"""


def fresh(count):
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    stack_seed.reset(conn)
    stack_seed.seed(conn, 'locks', count=count)
    with conn.cursor() as cur:
        cur.execute('ANALYZE')
    return conn


def time_minimal_sql(count):
    conn = fresh(count)
    conn.autocommit = False
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(BARE_SQL)
        conn.commit()
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_statement(count):
    conn = fresh(count)
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM auth_user WHERE username = 'korrigo-ops'")
        actor_id = cur.fetchone()[0]
        conn.commit()
        params = {'copy_ids': [], 'all_copies': True, 'include_active': False, 'reason': 'benchmark',
                  'max_changes': count + 10, 'actions_limit': 1000, 'event_action': 'UNLOCK',
                  'audit_action': 'korrigo_ops.copylock.release', 'actor_id': actor_id,
                  'audit_ip': '127.0.0.1', 'user_agent': 'benchmark'}
        started = time.perf_counter()
        cur.execute(copylock.release_statement(), params)
        cur.fetchone()
        conn.commit()
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_module(count, check_mode=False):
    fresh(count).close()
    args = {'ANSIBLE_MODULE_ARGS': {
        'login_host': '127.0.0.1', 'login_port': 55432, 'login_user': 'korrigo', 'login_password': 'stack-secret',
        'login_db': DB, 'expired': True, 'max_changes': count + 10, '_ansible_check_mode': check_mode}}
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as out:
        json.dump(args, out)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, '.cache', 'collections'))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'plugins', 'modules', 'copylock.py'), out.name],
                          env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    os.unlink(out.name)
    result = json.loads(proc.stdout)
    if result.get('failed') or result['count'] < count:
        raise SystemExit('copylock did not release the %d locks: %s' % (count, result.get('msg')))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--count', type=int, default=100000)
    parser.add_argument('--repeat', type=int, default=3)
    opts = parser.parse_args()
    migrate.create_database(ADMIN_DSN, DB, 'head')
    runs = {
        'statement_seconds': [time_statement(opts.count) for _run in range(opts.repeat)],
        'module_seconds': [time_module(opts.count) for _run in range(opts.repeat)],
        'module_check_mode_seconds': [time_module(opts.count, check_mode=True) for _run in range(opts.repeat)],
        'minimal_sql_seconds': [time_minimal_sql(opts.count) for _run in range(opts.repeat)],
    }
    summary = dict((name, round(statistics.median(values), 3)) for name, values in runs.items())
    summary['module_over_statement'] = round(summary['module_seconds'] / summary['statement_seconds'], 2)
    summary['module_over_minimal_sql'] = round(summary['module_seconds'] / summary['minimal_sql_seconds'], 2)
    summary['count'] = opts.count
    print(json.dumps({'runs': runs, 'median': summary}, indent=2))
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    stack_seed.reset(conn)
    conn.close()


if __name__ == '__main__':
    main()
