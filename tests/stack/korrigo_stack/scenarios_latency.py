"""Seed scenarios for latency (incident playbook scenario 4) and the database roles the tests need, plus
a helper that holds live sessions (a lock held idle in a transaction, and a session blocked on it) and
one that makes slow requests on the backend.

Scenarios:

* ``db_roles``: the non-superuser roles ``korrigo_readonly`` (SELECT on every table, ``pg_monitor`` to see
  other sessions' queries: what triage runs with) and ``korrigo_app`` (what the application's sessions use
  here, so they are not superuser sessions). Passwords = role names. Idempotent.
* ``latency``: ``db_roles`` plus an exam with three READY copies; ``contended_copy_id`` is the row the
  helper locks.

Helper (the sessions must outlive the command, so ``start`` detaches a process and ``stop`` ends it)::

    python3 -m korrigo_stack.scenarios_latency start --copy-id UUID [--dsn DSN] [--pidfile F] [--max-seconds 900]
    python3 -m korrigo_stack.scenarios_latency stop [--pidfile F]
    python3 -m korrigo_stack.scenarios_latency slow [--seconds 6] [--requests 3] [--url http://127.0.0.1:58088]

``start`` prints ``{"holder_pid", "blocker_pid", "waiter_pid"}`` once the blocker (application_name
``korrigo-latency-blocker``, idle in transaction after ``SELECT ... FOR UPDATE`` of the copy) and the waiter
(``korrigo-latency-waiter``, waiting on the same row lock) are in place. Neither session changes data. The
holder exits by itself after ``--max-seconds``.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from korrigo_stack import common
from korrigo_stack.seed import scenario

ROLES = {
    "korrigo_readonly": {"password": "korrigo_readonly", "member_of": ["pg_monitor"],
                         "grants": ["GRANT SELECT ON ALL TABLES IN SCHEMA public TO korrigo_readonly"]},
    "korrigo_app": {"password": "korrigo_app", "member_of": [],
                    "grants": ["GRANT SELECT ON ALL TABLES IN SCHEMA public TO korrigo_app",
                               "GRANT UPDATE ON exams_copy TO korrigo_app"]},
}
BLOCKER = "korrigo-latency-blocker"
WAITER = "korrigo-latency-waiter"
DEFAULT_PIDFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".run",
                               "latency-holder.pid")


def ensure_roles(cur):
    for role, spec in sorted(ROLES.items()):
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchone():
            cur.execute("CREATE ROLE %s LOGIN NOSUPERUSER PASSWORD %%s" % role, (spec["password"],))
        for group in spec["member_of"]:
            cur.execute("GRANT %s TO %s" % (group, role))
        cur.execute("GRANT USAGE ON SCHEMA public TO %s" % role)
        for grant in spec["grants"]:
            cur.execute(grant)
    return sorted(ROLES)


@scenario("db_roles", "non-superuser roles korrigo_readonly (triage) and korrigo_app (application sessions)")
def build_db_roles(ctx, count):
    return {"roles": ensure_roles(ctx.cur)}


@scenario("latency", "db_roles + three READY copies; the helper locks contended_copy_id (see scenarios_latency)")
def build_latency(ctx, count):
    roles = ensure_roles(ctx.cur)
    exam = ctx.create_exam(1, name="Bac blanc de chimie (latency)")
    ctx.load_ids("ready", 3)
    ctx.plan("ready", 3, status="'READY'", importer_id="%(admin)s",
             imported_at="now() - interval '1 day' - g.i * interval '5 minutes'",
             validator_id="%(admin)s", validated_at="now() - interval '1 day' + interval '20 minutes'",
             corrector_id="%(martin)s", dispatch_run_id="%(dispatch_run)s::uuid",
             assigned_at="now() - interval '1 day' + interval '1 hour'")
    ids = ctx.plan_copy_ids("ready")
    counts = ctx.materialize()
    return {"exam_id": exam, "roles": roles, "ready_copy_ids": ids, "contended_copy_id": ids[0], "counts": counts}


def app_dsn(dsn, application_name):
    from psycopg2.extensions import make_dsn

    return make_dsn(dsn, user="korrigo_app", password=ROLES["korrigo_app"]["password"],
                    application_name=application_name)


def hold(dsn, copy_id, max_seconds):
    """The detached process: blocker idle in transaction holding the row lock, waiter blocked on it."""
    import psycopg2

    blocker = psycopg2.connect(app_dsn(dsn, BLOCKER))
    with blocker.cursor() as cur:
        cur.execute("SELECT id FROM exams_copy WHERE id = %s FOR UPDATE", (copy_id,))
    waiter = psycopg2.connect(app_dsn(dsn, WAITER))
    waiter.autocommit = True

    def wait_for_row():
        try:
            with waiter.cursor() as cur:
                cur.execute("SELECT id FROM exams_copy WHERE id = %s FOR UPDATE", (copy_id,))
        except psycopg2.Error:
            pass

    threading.Thread(target=wait_for_row, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(max_seconds)
    for conn in (blocker, waiter):
        try:
            conn.cancel()
            conn.close()
        except psycopg2.Error:
            pass


def session_pids(dsn):
    import psycopg2

    conn = psycopg2.connect(dsn, application_name="korrigo-latency-probe")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT application_name, pid, state, wait_event_type FROM pg_stat_activity"
                        " WHERE application_name IN (%s, %s)", (BLOCKER, WAITER))
            return dict((row[0], row[1:]) for row in cur.fetchall())
    finally:
        conn.close()


def start(dsn, copy_id, pidfile, max_seconds, timeout=20.0):
    stop(pidfile)
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "korrigo_stack.scenarios_latency", "_hold", "--dsn", dsn,
                             "--copy-id", copy_id, "--max-seconds", str(max_seconds)],
                            env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(pidfile, "w") as handle:
        handle.write(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = session_pids(dsn)
        if (pids.get(BLOCKER, (None, None))[1] == "idle in transaction"
                and pids.get(WAITER, (None, None, None))[2] == "Lock"):
            return {"holder_pid": proc.pid, "blocker_pid": pids[BLOCKER][0], "waiter_pid": pids[WAITER][0]}
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(pidfile)
    raise RuntimeError("the latency holder did not get its sessions in place within %.0fs" % timeout)


def stop(pidfile):
    """End the holder started by ``start`` (its pid is in ``pidfile``); returns the pid or None."""
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            try:  # reap it when it is our child (start() in this process), else it is gone once kill fails
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            os.kill(pid, 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass
    try:
        os.remove(pidfile)
    except OSError:
        pass
    return pid


def slow_requests(url, seconds, requests):
    """``requests`` parallel GETs of /api/_debug/slow/?seconds=N; returns their status codes."""
    target = "%s/api/_debug/slow/?seconds=%s" % (url.rstrip("/"), seconds)
    codes = []

    def get():
        with urllib.request.urlopen(target, timeout=seconds + 30) as response:
            codes.append(response.status)

    threads = [threading.Thread(target=get) for _request in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.scenarios_latency")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "_hold"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--dsn", default=common.database_url())
        cmd.add_argument("--copy-id", required=True)
        cmd.add_argument("--max-seconds", type=float, default=900)
        cmd.add_argument("--pidfile", default=DEFAULT_PIDFILE)
    cmd = sub.add_parser("stop")
    cmd.add_argument("--pidfile", default=DEFAULT_PIDFILE)
    cmd = sub.add_parser("slow")
    cmd.add_argument("--url", default="http://127.0.0.1:%d" % common.backend_port())
    cmd.add_argument("--seconds", type=float, default=6)
    cmd.add_argument("--requests", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "_hold":
        hold(args.dsn, args.copy_id, args.max_seconds)
        return 0
    if args.command == "start":
        print(json.dumps(start(args.dsn, args.copy_id, args.pidfile, args.max_seconds)))
    elif args.command == "stop":
        print(json.dumps({"stopped": stop(args.pidfile)}))
    else:
        print(json.dumps({"status_codes": slow_requests(args.url, args.seconds, args.requests)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
