"""Scenarios 1 and 2 at incident scale: 2,500 failed finalizations and 1,000 stuck imports, each in one playbook
run, the collection's own time (selection, page-image checks, clamping, queueing, rendering, report) against the
worker's time.

Usage: python benchmarks/bench_work_lists.py [--failed 2500] [--stuck 1000] [--keep]

Works in a database of its own (korrigo_bench_worklists, HEAD schema), a media root of its own
(benchmarks/.worklists/media) and a Redis database of its own (56379/7), with a Celery worker of its own: the
stack's worker code (korrigo_stack.worker, the same as its container runs) started here on the host, pointed at
them. The stack's ``korrigo`` database, media and queue are never touched.

- ``retry_failed_finalizations.yml`` on korrigo_stack's ``finalization`` scenario with ``count`` bulk copies
  (repairable GRADING_FAILED copies with page images on disk, plus every cause of the scenario): the playbook's
  wall time, each task's time (json callback), "Wait for the worker" (the worker finalizing every queued copy) and
  the rest (the collection's own time);
- ``recover_stuck_imports.yml`` on the ``import_stuck`` scenario with ``count`` copies: copy_import checks and
  rasterizes every importable PDF itself (no worker), so its task is the collection's work on the files.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from korrigo_stack import migrate  # noqa: E402
from korrigo_stack import seed as stack_seed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WORK_DIR = os.path.join(HERE, '.worklists')
MEDIA = os.path.join(WORK_DIR, 'media')
LOGS = os.path.join(WORK_DIR, 'logs')
DB = 'korrigo_bench_worklists'
BROKER = 'redis://127.0.0.1:56379/7'


def worker_env():
    env = common.env()
    env.update(DATABASE_URL=common.dsn_for(DB), CELERY_BROKER_URL=BROKER, CELERY_RESULT_BACKEND=BROKER,
               MEDIA_ROOT=MEDIA, KORRIGO_LOG_DIR=LOGS, KORRIGO_SCHEMA_VERSION='head')
    return env


def start_worker():
    os.makedirs(LOGS, exist_ok=True)
    celery = os.path.join(common.ROOT, '.venv', 'bin', 'celery')
    log = open(os.path.join(WORK_DIR, 'worker.out'), 'w')
    proc = subprocess.Popen([celery, '-A', 'korrigo_stack.worker', 'worker', '-l', 'warning', '--concurrency=2',
                             '--max-tasks-per-child=50', '-Q', 'celery', '-n', 'bench-worklists@%h'],
                            env=worker_env(), stdout=log, stderr=subprocess.STDOUT, cwd=common.ROOT,
                            start_new_session=True)
    import redis
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    deadline = time.time() + 60
    from celery import Celery
    app = Celery(broker=BROKER, backend=BROKER)
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit('the benchmark worker exited (see %s)' % log.name)
        if app.control.ping(timeout=1.0):
            return proc
    raise SystemExit('the benchmark worker did not answer within 60 s (see %s)' % log.name)


def stop_worker(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def task_durations(json_out):
    """[(task name, action, seconds)] of every task of the run, from the json callback."""
    doc = json.loads(json_out[json_out.find('{'):])
    out = []
    for play in doc.get('plays', []):
        for task in play.get('tasks', []):
            duration = task['task'].get('duration') or {}
            if not duration.get('end'):
                continue
            begin = datetime.fromisoformat(duration['start'].replace('Z', '+00:00'))
            end = datetime.fromisoformat(duration['end'].replace('Z', '+00:00'))
            actions = set(h.get('action') for h in task.get('hosts', {}).values())
            out.append((task['task']['name'], ','.join(sorted(a for a in actions if a)),
                        round((end - begin).total_seconds(), 3)))
    return out


def run(playbook, extra_vars):
    os.environ['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.json'
    try:
        seconds, rc, out = common.run_playbook(os.path.join(common.ROOT, 'playbooks', playbook), extra_vars)
    finally:
        os.environ.pop('ANSIBLE_STDOUT_CALLBACK', None)
    if rc != 0:
        raise SystemExit('%s failed (rc %d): %s' % (playbook, rc, out[-4000:]))
    return seconds, task_durations(out)


def fresh(scenario, count):
    os.environ['MEDIA_ROOT'] = MEDIA  # the seeder writes the scenario's files here (korrigo_stack.common)
    conn = psycopg2.connect(common.dsn_for(DB))
    conn.autocommit = True
    stack_seed.reset(conn)
    seeded = stack_seed.seed(conn, scenario, count=count)
    with conn.cursor() as cur:
        cur.execute('VACUUM ANALYZE')
        cur.execute("SELECT status, count(*) FROM exams_copy GROUP BY status ORDER BY status")
        by_status = dict(cur.fetchall())
    conn.close()
    return seeded, by_status


def copies_by_status():
    conn = psycopg2.connect(common.dsn_for(DB))
    with conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM exams_copy GROUP BY status ORDER BY status")
        out = dict(cur.fetchall())
    conn.close()
    return out


def common_vars(max_changes):
    return {'korrigo_db_name': DB, 'korrigo_broker_url': BROKER, 'korrigo_worker_broker_url': BROKER,
            'korrigo_media_root': MEDIA, 'korrigo_max_changes': max_changes, 'korrigo_worker_manager': 'none',
            'korrigo_report_dir': os.path.join(WORK_DIR, 'reports')}


def finalizations(count):
    seeded, before = fresh('finalization', count)
    extra = common_vars(count * 2)
    extra['finalization_failing_wait_seconds'] = 1800
    seconds, tasks = run('retry_failed_finalizations.yml', extra)
    worker = sum(s for name, _action, s in tasks if 'Wait for the worker' in name)
    return {'copies': sum(before.values()), 'failed_before': before.get('GRADING_FAILED', 0),
            'in_progress_before': before.get('GRADING_IN_PROGRESS', 0), 'bulk': len(seeded.get('bulk_copy_ids', [])),
            'after': copies_by_status(), 'playbook_seconds': round(seconds, 2), 'worker_seconds': round(worker, 2),
            'collection_seconds': round(seconds - worker, 2),
            'tasks': sorted(tasks, key=lambda t: -t[2])[:12]}


def imports(count):
    seeded, before = fresh('import_stuck', count)
    seconds, tasks = run('recover_stuck_imports.yml', common_vars(count * 2))
    render = sum(s for _name, action, s in tasks if 'copy_import' in action)
    return {'copies': sum(before.values()), 'staging_before': before.get('STAGING', 0),
            'importable': len(seeded.get('importable_copy_ids', [])), 'flagged': len(seeded.get('flagged_copy_ids', [])),
            'after': copies_by_status(), 'playbook_seconds': round(seconds, 2),
            'copy_import_seconds': round(render, 2), 'rest_seconds': round(seconds - render, 2),
            'tasks': sorted(tasks, key=lambda t: -t[2])[:12]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--failed', type=int, default=2500)
    parser.add_argument('--stuck', type=int, default=1000)
    parser.add_argument('--keep', action='store_true')
    parser.add_argument('--repeat', type=int, default=1,
                        help='accepted for bench.py; each incident runs once (the worker takes minutes)')
    opts = parser.parse_args(argv)
    shutil.rmtree(WORK_DIR, ignore_errors=True)
    os.makedirs(MEDIA)
    migrate.create_database(common.ADMIN_DSN, DB, 'head')
    result = {'scenario': 'work_lists', 'load_before': common.load_average()}
    worker = start_worker()
    try:
        result['finalizations'] = finalizations(opts.failed)
        print('  finalizations: %(playbook_seconds).1f s, worker %(worker_seconds).1f s' % result['finalizations'],
              file=sys.stderr)
        result['imports'] = imports(opts.stuck)
        print('  imports: %(playbook_seconds).1f s, copy_import %(copy_import_seconds).1f s' % result['imports'],
              file=sys.stderr)
    finally:
        stop_worker(worker)
    result['load_after'] = common.load_average()
    if not opts.keep:
        migrate.drop_database(common.ADMIN_DSN, DB)
        shutil.rmtree(WORK_DIR, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
