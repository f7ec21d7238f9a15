"""Scenario 3 at scale: release_expired_locks.yml at N expired locks, against its floors in the same run.

Usage: python benchmarks/bench_locks.py [--counts 1000,10000,100000] [--repeat 3] [--row-by-row-max 100000]
                                        [--db korrigo_bench_locks]

Each measurement starts from a freshly seeded database of its own (korrigo_stack's ``locks`` scenario: N expired
locks, 2 active, 3 free copies) and includes the commit (where Korrigo's deferred foreign keys are checked):

- ``playbook``: the whole release_expired_locks.yml (Ansible start, facts before and after, the copylock task,
  report; the default stdout callback, as the empty play is timed), and inside it the copylock task (its duration
  from benchmarks/callback_plugins/task_times.py);
- ``module``: the copylock module process alone (Python start-up, connection, version detection, advisory lock,
  its statement, result);
- ``statements``: statements the copylock task sent (pg_stat_statements calls in this database, before/after);
- floors: ``statement`` (copylock's own statement sent by hand: guards, UNLOCK events, audit rows),
  ``floor_with_audit`` (the plainest hand-written statement doing the same work: DELETE, UPDATE, UNLOCK event
  and core_auditlog row per lock with the same metadata, no guard, no row lock), ``floor_without_audit`` (DELETE +
  UPDATE only), and ``row_by_row`` (the runbook's procedure as a Django shell runs it: one autocommitted round trip
  per row, per lock).
"""
import argparse
import json
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from ansible_collections.korrigo.ops.plugins.modules import copylock  # noqa: E402
from korrigo_stack import migrate  # noqa: E402
from korrigo_stack import seed as stack_seed  # noqa: E402

DEFAULT_DB = 'korrigo_bench_locks'

FLOOR_WITHOUT_AUDIT = """
WITH released AS (DELETE FROM grading_copylock WHERE expires_at < now() RETURNING copy_id)
UPDATE exams_copy c SET status = 'READY', locked_at = NULL, locked_by_id = NULL
  FROM released r WHERE c.id = r.copy_id AND c.status = 'LOCKED'
"""
# The same rows as copylock writes: the UNLOCK event and the core_auditlog row with the same metadata (the lock, its
# owner, the status before and after), as the plainest hand-written statement (no guard, no row lock, no result).
FLOOR_WITH_AUDIT = """
WITH released AS (DELETE FROM grading_copylock WHERE expires_at < now()
                  RETURNING id, copy_id, owner_id, locked_at, expires_at),
copies AS (UPDATE exams_copy c SET status = 'READY', locked_at = NULL, locked_by_id = NULL
             FROM released r WHERE c.id = r.copy_id AND c.status = 'LOCKED'
           RETURNING c.id, r.id AS lock_id, r.owner_id, r.locked_at, r.expires_at),
events AS (INSERT INTO grading_gradingevent (id, action, "timestamp", metadata, actor_id, copy_id)
           SELECT gen_random_uuid(), 'UNLOCK', now(),
                  jsonb_build_object('remediation', 'korrigo.ops.copylock', 'reason', 'benchmark',
                                     'lock_owner_id', owner_id, 'lock_expires_at', expires_at, 'forced', false),
                  %(actor)s, id FROM copies)
INSERT INTO core_auditlog ("timestamp", student_id, action, resource_type, resource_id, ip_address, user_agent,
                           metadata, user_id)
SELECT now(), NULL, 'korrigo_ops.copylock.release', 'Copy', c.id::text, '127.0.0.1', 'benchmark',
       jsonb_build_object('remediation', 'korrigo.ops.copylock', 'reason', 'benchmark',
                          'lock', jsonb_build_object('id', c.lock_id, 'owner', u.username, 'owner_id', c.owner_id,
                                                     'locked_at', c.locked_at, 'expires_at', c.expires_at),
                          'status_before', 'LOCKED', 'status_after', 'READY'),
       %(actor)s
  FROM copies c JOIN auth_user u ON u.id = c.owner_id
"""


def fresh(db, count):
    conn = psycopg2.connect(common.dsn_for(db))
    conn.autocommit = True
    stack_seed.reset(conn)
    stack_seed.seed(conn, 'locks', count=count)
    with conn.cursor() as cur:
        cur.execute('VACUUM ANALYZE')
    return conn


def actor(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM auth_user WHERE username = 'korrigo-ops'")
        return cur.fetchone()[0]


def timed_commit(db, count, statement, params):
    conn = fresh(db, count)
    params = dict(params, actor=actor(conn))
    conn.autocommit = False
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(statement, params)
        conn.commit()
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_statement(db, count):
    params = {'copy_ids': [], 'all_copies': True, 'include_active': False, 'reason': 'benchmark',
              'max_changes': count + 10, 'actions_limit': 1000, 'event_action': 'UNLOCK',
              'audit_action': 'korrigo_ops.copylock.release', 'audit_ip': '127.0.0.1', 'user_agent': 'benchmark'}
    conn = fresh(db, count)
    params['actor_id'] = actor(conn)
    conn.autocommit = False
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(copylock.release_statement(), params)
        cur.fetchone()
        conn.commit()
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def time_row_by_row(db, count):
    """The runbook's procedure (corrected, S3-2/S3-8) as `manage.py shell` runs it, autocommit, per lock: read the
    lock and its copy, delete the lock, save the copy (Django's save() writes every column), write the UNLOCK
    event and the audit row."""
    conn = fresh(db, count)
    user = actor(conn)
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute('SELECT id, copy_id FROM grading_copylock WHERE expires_at < now()')
        for lock_id, copy_id in cur.fetchall():
            cur.execute('SELECT * FROM grading_copylock WHERE id = %s', (lock_id,))
            cur.fetchone()
            cur.execute('SELECT * FROM exams_copy WHERE id = %s', (copy_id,))
            row = cur.fetchone()
            cur.execute('DELETE FROM grading_copylock WHERE id = %s', (lock_id,))
            cur.execute("UPDATE exams_copy SET anonymous_id = %s, status = 'READY', locked_at = NULL,"
                        " locked_by_id = NULL, grading_retries = %s WHERE id = %s", (row[1], row[13], copy_id))
            cur.execute("INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
                        " VALUES (gen_random_uuid(), 'UNLOCK', now(), '{}'::jsonb, %s, %s)", (user, copy_id))
            cur.execute("INSERT INTO core_auditlog (\"timestamp\", student_id, action, resource_type, resource_id,"
                        " ip_address, user_agent, metadata, user_id) VALUES (now(), NULL, 'lock.release', 'Copy',"
                        " %s, '127.0.0.1', 'shell', '{}'::jsonb, %s)", (str(copy_id), user))
        elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def statements_count(db):
    conn = psycopg2.connect(common.dsn_for(db))
    try:
        with conn.cursor() as cur:
            # What the client sent, apart from PostgreSQL's own foreign-key checks: Korrigo's constraints are deferred,
            # so at COMMIT each UNLOCK event and audit row is checked by a `SELECT ... FOR KEY SHARE OF x` that
            # pg_stat_statements records at top level (3 per lock).
            cur.execute("SELECT coalesce(sum(calls) FILTER (WHERE query NOT LIKE '%%FOR KEY SHARE OF x'), 0),"
                        " coalesce(sum(calls), 0)"
                        " FROM pg_stat_statements"
                        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
            return tuple(int(v) for v in cur.fetchone())
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def time_module(db, count):
    fresh(db, count).close()
    before = statements_count(db)
    seconds, result = common.run_module('copylock', {'expired': True, 'max_changes': count + 10}, db)
    after = statements_count(db)
    if result['count'] < count:
        raise SystemExit('copylock released %d of %d locks' % (result['count'], count))
    # the counting statement itself is in the window once (top level and in all)
    sent = None if before is None else {'client': after[0] - before[0] - 1,
                                        'with_foreign_key_checks': after[1] - before[1] - 1}
    return seconds, sent


def time_playbook(db, count):
    """Wall time of the whole playbook with the default stdout callback (as users run it, and as the empty play is
    timed), and the copylock task's own time from benchmarks/callback_plugins/task_times.py."""
    fresh(db, count).close()
    times_file = os.path.join(common.ROOT, 'benchmarks', '.task-times.json')
    extra_env = {'ANSIBLE_CALLBACKS_ENABLED': 'task_times', 'KORRIGO_BENCH_TASK_TIMES': times_file,
                 'ANSIBLE_CALLBACK_PLUGINS': os.path.join(common.ROOT, 'benchmarks', 'callback_plugins')}
    os.environ.update(extra_env)
    try:
        seconds, rc, out = common.run_playbook(
            os.path.join(common.ROOT, 'playbooks', 'release_expired_locks.yml'),
            {'korrigo_db_name': db, 'korrigo_max_changes': count + 10,
             'korrigo_report_dir': '/tmp/korrigo-bench-reports'})
    finally:
        for key in extra_env:
            os.environ.pop(key, None)
    if rc != 0:
        raise SystemExit('release_expired_locks.yml failed (rc %d): %s' % (rc, out[-3000:]))
    with open(times_file) as src:
        times = json.load(src)
    os.unlink(times_file)
    return seconds, task_seconds(times, 'copylock')


def task_seconds(times, module_word):
    """Duration of the first task whose action contains ``module_word`` (task_times callback)."""
    for entry in times:
        if module_word in (entry.get('action') or ''):
            return entry['seconds']
    return None


def measure(db, count, repeat, row_by_row_max):
    runs = {'statement': [], 'module': [], 'playbook': [], 'copylock_task': [], 'floor_with_audit': [],
            'floor_without_audit': [], 'row_by_row': []}
    statements = []
    for _run in range(repeat):
        runs['statement'].append(time_statement(db, count))
        seconds, sent = time_module(db, count)
        runs['module'].append(seconds)
        statements.append(sent)
        seconds, task = time_playbook(db, count)
        runs['playbook'].append(seconds)
        runs['copylock_task'].append(task)
        runs['floor_with_audit'].append(timed_commit(db, count, FLOOR_WITH_AUDIT, {}))
        runs['floor_without_audit'].append(timed_commit(db, count, FLOOR_WITHOUT_AUDIT, {}))
    if count <= row_by_row_max:
        runs['row_by_row'].append(time_row_by_row(db, count))  # once: it is the slow one
    out = dict((name, common.stats(values)) for name, values in runs.items() if values and None not in values)
    out['statements_sent'] = statements
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--db', default=DEFAULT_DB)
    parser.add_argument('--counts', default='1000,10000,100000')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--row-by-row-max', type=int, default=100000)
    parser.add_argument('--keep', action='store_true', help='keep the database afterwards')
    opts = parser.parse_args(argv)
    migrate.create_database(common.ADMIN_DSN, opts.db, 'head')
    conn = psycopg2.connect(common.dsn_for(opts.db))
    conn.autocommit = True
    with conn.cursor() as cur:  # statements sent, counted in this database only (no reset: others read theirs)
        cur.execute('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
    conn.close()
    result = {'scenario': 'locks', 'load_before': common.load_average(), 'by_n': {}}
    for count in [int(c) for c in opts.counts.split(',')]:
        result['by_n'][str(count)] = measure(opts.db, count, opts.repeat, opts.row_by_row_max)
        print('  locks N=%d done' % count, file=sys.stderr)
    result['load_after'] = common.load_average()
    if not opts.keep:
        migrate.drop_database(common.ADMIN_DSN, opts.db)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
