"""Scenario 5 (a fleet) and Ansible's fixed cost: triage.yml and release_expired_locks.yml over 1, 5 and 20 school
databases in one inventory, against N x one school, next to an empty play and a no-op module task.

Usage: python benchmarks/bench_fleet.py [--schools 1,5,20] [--repeat 3] [--locks 50] [--keep]

Each school is a database of its own (korrigo_bench_school_NN, korrigo_stack.migrate.create_database, HEAD
schema) with a small seed: ``baseline`` (10 copies) plus ``locks`` (``--locks`` expired locks, seeded again before
every release run). The inventory (benchmarks/.fleet/hosts.yml, written here) has one host per school, local
connection, the local inventory's group_vars; forks = number of schools (at most 20). "N x one school" is N times
the median of the 1-school run: the wall time a serial loop over the schools would take. The floor of the fleet
(benchmarks/playbooks/fleet_floor.yml) is triage.yml's shape with every task a no-op, over the same schools and
forks: Ansible's own cost of that many tasks per school.
"""
import argparse
import json
import os
import shutil
import sys

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

from korrigo_stack import migrate  # noqa: E402
from korrigo_stack import seed as stack_seed  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FLEET_DIR = os.path.join(HERE, '.fleet')  # two levels below the root, as the local inventory's paths expect
PLAYBOOKS = os.path.join(common.ROOT, 'playbooks')
# triage.yml's shape with every task a no-op: what Ansible itself costs a fleet of N schools on these cores.
FLEET_FLOOR = os.path.join(HERE, 'playbooks', 'fleet_floor.yml')


def school_db(i):
    return 'korrigo_bench_school_%02d' % i


def write_inventory(n):
    os.makedirs(FLEET_DIR, exist_ok=True)
    group_vars = os.path.join(FLEET_DIR, 'group_vars')
    if not os.path.exists(group_vars):
        os.symlink(os.path.join(common.ROOT, 'inventories', 'local', 'group_vars'), group_vars)
    path = os.path.join(FLEET_DIR, 'hosts-%d.yml' % n)
    hosts = {}
    for i in range(1, n + 1):
        hosts['school-%02d' % i] = {'ansible_connection': 'local',
                                    'ansible_python_interpreter': '{{ ansible_playbook_python }}',
                                    'korrigo_db_name': school_db(i)}
    with open(path, 'w') as out:
        json.dump({'all': {'children': {'korrigo': {'hosts': hosts}}}}, out, indent=1)
        out.write('\n')
    return path


def prepare(n_max, locks):
    for i in range(1, n_max + 1):
        migrate.create_database(common.ADMIN_DSN, school_db(i), 'head')
        conn = psycopg2.connect(common.dsn_for(school_db(i)))
        conn.autocommit = True
        stack_seed.reset(conn)
        stack_seed.seed(conn, 'baseline', count=10)
        stack_seed.seed(conn, 'locks', count=locks)
        conn.close()


def reseed_locks(n, locks):
    for i in range(1, n + 1):
        conn = psycopg2.connect(common.dsn_for(school_db(i)))
        conn.autocommit = True
        stack_seed.seed(conn, 'locks', count=locks)
        conn.close()


def play(playbook, inventory, forks, extra=None):
    extra_vars = {'korrigo_report_dir': '/tmp/korrigo-bench-reports'}
    extra_vars.update(extra or {})
    seconds, rc, out = common.run_playbook(playbook, extra_vars, inventory=inventory, extra_args=['-f', str(forks)])
    if rc not in (0, 2):
        raise SystemExit('%s failed (rc %d): %s' % (os.path.basename(playbook), rc, out[-3000:]))
    return seconds


def fixed_cost(repeat):
    inventory = write_inventory(1)
    out = {}
    for name in ('empty', 'noop_module', 'one_korrigo_module'):
        path = os.path.join(HERE, 'playbooks', name + '.yml')
        play(path, inventory, 1)
        out[name] = common.stats([play(path, inventory, 1) for _run in range(repeat)])
        print('  fixed %-20s median %.2f s' % (name, out[name]['median']), file=sys.stderr)
    return out


def fleet(schools, repeat, locks):
    out = {}
    for n in schools:
        inventory = write_inventory(n)
        forks = min(n, 20)
        triage = [play(os.path.join(PLAYBOOKS, 'triage.yml'), inventory, forks) for _run in range(repeat)]
        floor = [play(FLEET_FLOOR, inventory, forks) for _run in range(repeat)]
        release = []
        for _run in range(repeat):
            reseed_locks(n, locks)
            release.append(play(os.path.join(PLAYBOOKS, 'release_expired_locks.yml'), inventory, forks,
                                {'korrigo_max_changes': locks + 10}))
        out[str(n)] = {'forks': forks, 'triage': common.stats(triage), 'release_expired_locks': common.stats(release),
                       'ansible_floor': common.stats(floor)}
        print('  fleet %2d schools: triage %.1f s, release %.1f s' % (
            n, out[str(n)]['triage']['median'], out[str(n)]['release_expired_locks']['median']), file=sys.stderr)
    one = out.get('1')
    if one:
        for n, row in out.items():
            for name in ('triage', 'release_expired_locks', 'ansible_floor'):
                row[name]['n_times_one_school'] = round(int(n) * one[name]['median'], 2)
                row[name]['over_one_school'] = round(row[name]['median'] / one[name]['median'], 2)
    return out


def drop(n_max):
    for i in range(1, n_max + 1):
        migrate.drop_database(common.ADMIN_DSN, school_db(i))
    shutil.rmtree(FLEET_DIR, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--schools', default='1,5,20')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--locks', type=int, default=50)
    parser.add_argument('--keep', action='store_true')
    parser.add_argument('--fixed-only', action='store_true')
    opts = parser.parse_args(argv)
    schools = [int(n) for n in opts.schools.split(',')]
    prepare(max(schools), opts.locks)
    result = {'scenario': 'fleet', 'load_before': common.load_average(), 'fixed_cost': fixed_cost(opts.repeat)}
    if not opts.fixed_only:
        result['fleet'] = fleet(schools, opts.repeat, opts.locks)
    result['load_after'] = common.load_average()
    if not opts.keep:
        drop(max(schools))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
