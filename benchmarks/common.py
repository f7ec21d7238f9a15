"""What every benchmark shares: timing a module process or a playbook, plain SQL, min/median/max, the machine."""
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_DSN = os.environ.get('KORRIGO_DSN', 'postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo')
LOGIN = {'login_host': '127.0.0.1', 'login_port': 55432, 'login_user': 'korrigo', 'login_password': 'stack-secret'}


def dsn_for(db):
    return ADMIN_DSN.rsplit('/', 1)[0] + '/' + db


def env():
    out = dict(os.environ)
    out.update(PYTHONPATH=os.pathsep.join([os.path.join(ROOT, '.cache', 'collections'),
                                           os.path.join(ROOT, 'tests', 'stack')]),
               ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'),
               PATH=os.path.join(ROOT, '.venv', 'bin') + os.pathsep + os.environ.get('PATH', ''))
    return out


def run_module(name, args, db, check_mode=False):
    """Run plugins/modules/<name>.py as Ansible runs it (its own process); (seconds, result)."""
    login = dict(LOGIN, login_db=db) if db else {}  # db None: a module without a database (pdf_check)
    payload = {'ANSIBLE_MODULE_ARGS': dict(login, _ansible_check_mode=check_mode, **args)}
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as out:
        json.dump(payload, out)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'plugins', 'modules', name + '.py'), out.name],
                          env=env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    os.unlink(out.name)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit('%s printed no JSON: %s %s' % (name, proc.stdout[-2000:], proc.stderr[-2000:]))
    if result.get('failed'):
        raise SystemExit('%s failed: %s' % (name, result.get('msg')))
    return elapsed, result


def run_playbook(playbook, extra_vars=None, inventory=None, check=False, extra_args=()):
    """ansible-playbook <playbook> against the local inventory (or ``inventory``); (seconds, rc, stdout)."""
    cmd = [os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), playbook,
           '-i', inventory or os.path.join(ROOT, 'inventories', 'local')]
    for key, value in (extra_vars or {}).items():
        cmd += ['-e', '%s=%s' % (key, value)]
    if check:
        cmd.append('--check')
    cmd += list(extra_args)
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=False, cwd=ROOT)
    return time.perf_counter() - started, proc.returncode, proc.stdout + proc.stderr


def timed_sql(db, statement, params=None, rounds=1):
    """Seconds of ``statement`` over a fresh connection in a read-only transaction (rows fetched)."""
    conn = psycopg2.connect(dsn_for(db))
    try:
        with conn.cursor() as cur:
            cur.execute('SET TRANSACTION READ ONLY')
            started = time.perf_counter()
            for _round in range(rounds):
                cur.execute(statement, params or {})
                rows = cur.fetchall()
            elapsed = time.perf_counter() - started
        conn.rollback()
        return elapsed, rows
    finally:
        conn.close()


def explain(db, statement, params=None):
    """EXPLAIN (ANALYZE, BUFFERS) text of ``statement``, read-only, rolled back."""
    conn = psycopg2.connect(dsn_for(db))
    try:
        with conn.cursor() as cur:
            cur.execute('SET TRANSACTION READ ONLY')
            while statement.lstrip().upper().startswith('SET LOCAL'):  # a statement's own settings, then the query
                setting, statement = statement.split(';', 1)
                cur.execute(setting)
            cur.execute('EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ' + statement, params or {})
            return '\n'.join(row[0] for row in cur.fetchall())
    finally:
        conn.rollback()
        conn.close()


def seq_scans(plan_text, tables):
    """Big tables scanned sequentially in an EXPLAIN text."""
    return sorted(set(t for t in tables for line in plan_text.splitlines()
                      if 'Seq Scan on %s ' % t in line + ' '))


def stats(values):
    values = [round(v, 4) for v in values]
    return {'min': min(values), 'median': round(statistics.median(values), 4), 'max': max(values),
            'runs': len(values), 'values': values}


def repeat(fn, times):
    return [fn() for _run in range(times)]


def machine():
    """Machine and versions, for results.json."""
    info = {'platform': platform.platform(), 'python': platform.python_version(), 'cpus': os.cpu_count()}
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    info['cpu'] = line.split(':', 1)[1].strip()
                    break
        with open('/proc/meminfo') as meminfo:
            info['memory_kb'] = int(meminfo.readline().split()[1])
    except OSError:
        pass
    try:
        import ansible.release
        info['ansible_core'] = ansible.release.__version__
    except ImportError:
        pass
    try:
        import fitz
        info['pymupdf'] = fitz.VersionBind
    except ImportError:
        pass
    conn = psycopg2.connect(ADMIN_DSN)
    with conn.cursor() as cur:
        cur.execute('SHOW server_version')
        info['postgresql'] = cur.fetchone()[0]
        cur.execute("SELECT name, setting FROM pg_settings WHERE name IN"
                    " ('fsync', 'shared_buffers', 'work_mem', 'synchronous_commit', 'max_parallel_workers_per_gather')")
        info['postgresql_settings'] = dict(cur.fetchall())
    conn.close()
    return info


def load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def busy_processes(limit=8):
    """What else was running (other engineers' tests): top CPU processes other than ours."""
    proc = subprocess.run(['ps', '-eo', 'pcpu,etimes,args', '--sort=-pcpu'], capture_output=True, text=True,
                          check=False)
    rows = []
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) < 3 or float(parts[0]) < 5.0 or 'benchmarks/' in parts[2] or parts[2].startswith('ps '):
            continue
        rows.append({'cpu_percent': float(parts[0]), 'command': parts[2][:160]})
        if len(rows) >= limit:
            break
    return rows
