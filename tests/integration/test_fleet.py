"""One run of release_expired_locks.yml over a fleet: three schools (HEAD, HEAD, 8f16b75) and one broken school."""
import json
import os
import subprocess

import psycopg2
import psycopg2.extras
import pytest
import yaml

from conftest import DB_SUFFIX, DSN, ROOT, dsn_for
from korrigo_stack import migrate, seed as stack_seed

SCHOOLS = {'school-a': 'head', 'school-b': 'head', 'school-c': '8f16b75'}


def expired_locks(conn):
    with conn.cursor() as cur:
        cur.execute('SELECT count(*) AS n FROM grading_copylock WHERE expires_at < now()')
        return cur.fetchone()['n']


@pytest.fixture
def fleet(stack, tmp_path):
    """Three seeded databases and an inventory of four schools, the fourth one's database unreachable (port 1)."""
    conns = {}
    for school, version in SCHOOLS.items():
        name = 'korrigo_fleet_%s%s' % (school[-1], DB_SUFFIX)
        migrate.create_database(DSN, name, version)
        conn = psycopg2.connect(dsn_for(name), cursor_factory=psycopg2.extras.RealDictCursor)
        conn.autocommit = True
        stack_seed.reset(conn)
        stack_seed.seed(conn, 'locks')
        assert expired_locks(conn) > 0
        conns[school] = (name, conn)
    with open(os.path.join(ROOT, 'inventories', 'local', 'group_vars', 'korrigo.yml')) as handle:
        group_vars = yaml.safe_load(handle)
    group_vars.update(korrigo_media_root=os.path.join(ROOT, 'tests', 'stack', '.run', 'media'),
                      korrigo_log_file=str(tmp_path / 'django.log'), korrigo_report_dir=str(tmp_path / 'reports'))
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}
    # The broken school comes first: with korrigo_serial=1 its batch is the first one, and must not end the run.
    hosts = {'school-d': dict(local, korrigo_db_name='korrigo_fleet_d', korrigo_db_port=1,
                              korrigo_school='Lycee D (database down)')}
    for school, (name, _conn) in conns.items():
        hosts[school] = dict(local, korrigo_db_name=name, korrigo_school='Lycee %s' % school[-1].upper())
    inventory = tmp_path / 'fleet.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'korrigo': {'hosts': hosts, 'vars': group_vars}}}}))
    yield inventory, tmp_path / 'reports', dict((s, c) for s, (_n, c) in conns.items())
    for _name, conn in conns.values():
        conn.close()


def test_one_run_converges_every_school_and_a_broken_one_stops_none(fleet):
    inventory, reports, conns = fleet
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    proc = subprocess.run(['ansible-playbook', os.path.join(ROOT, 'playbooks', 'release_expired_locks.yml'),
                           '-i', str(inventory), '-e', 'korrigo_serial=1'], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    output = proc.stdout + proc.stderr
    # The broken school fails the run (exit 2) but only after every other school was remediated.
    assert proc.returncode == 2, output[-4000:]
    assert 'school-d                   : ok=' in proc.stdout and 'failed=1' in proc.stdout.split('school-d ')[-1]
    for school in SCHOOLS:
        assert expired_locks(conns[school]) == 0, school
        recap = proc.stdout.rsplit('PLAY RECAP', 1)[1].split(school, 1)[1].splitlines()[0]
        assert 'failed=0' in recap, recap
        with open(str(reports / ('lock_conflicts-%s-latest.json' % school))) as handle:
            report = json.load(handle)
        assert report['host'] == school and report['korrigo_version'] == SCHOOLS[school]
        assert report['actions']['count'] == report['facts_before']['expired_total'] > 0
        assert report['facts_after']['expired_total'] == 0
    assert not list(reports.glob('lock_conflicts-school-d-*'))

    with open(str(reports / 'fleet-lock_conflicts-latest.json')) as handle:
        summary = json.load(handle)
    rows = dict((row['host'], row) for row in summary['rows'])
    assert sorted(rows) == ['school-a', 'school-b', 'school-c', 'school-d'] and summary['schools'] == 4
    assert summary['failed'] == ['school-d'] and rows['school-d']['status'] == 'failed'
    assert 'korrigo_fleet_d' in rows['school-d']['failed'] or 'port 1' in rows['school-d']['failed'] \
        or 'connect' in rows['school-d']['failed'].lower()
    for school in SCHOOLS:
        assert rows[school]['done_count'] > 0 and rows[school]['failed'] is None
        assert rows[school]['severity'] == 'P3'
    stamped = [p.name for p in reports.glob('fleet-lock_conflicts-2*.md')]
    assert len(stamped) == 1
    table = (reports / 'fleet-lock_conflicts-latest.md').read_text()
    for school in ('Lycee A', 'Lycee B', 'Lycee C', 'Lycee D (database down)'):
        assert '| %s | lock_conflicts |' % school in table
    assert 'Fleet summary: lock_conflicts' in proc.stdout  # printed too
