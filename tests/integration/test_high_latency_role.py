"""The high_latency role's index option (off by default), on the 8f16b75 database so HEAD's stays as seeded."""
import json
import os
import subprocess

import pytest

from conftest import ROOT, VERSIONS

INDEX = 'exams_copy_status_ops_idx'


@pytest.fixture
def db_8f(databases):
    import psycopg2
    conn = psycopg2.connect(databases['8f16b75'])
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute('DROP INDEX IF EXISTS %s' % INDEX)
    yield conn
    with conn.cursor() as cur:
        cur.execute('DROP INDEX IF EXISTS %s' % INDEX)
    conn.close()


def index_present(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", (INDEX,))
        return cur.fetchone()[0] == 1


def diagnose(tmp_path, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'diagnose_latency.yml'),
               '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', 'korrigo_db_name=%s' % VERSIONS['8f16b75'],
               '-e', 'korrigo_report_dir=%s' % tmp_path] + list(extra)
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    with open(str(tmp_path / 'high_latency-korrigo-local.json')) as handle:
        return json.load(handle)


def test_missing_index_is_reported_then_created_only_when_asked(db_8f, tmp_path):
    report = diagnose(tmp_path)
    assert not index_present(db_8f)
    assert any('CREATE INDEX CONCURRENTLY IF NOT EXISTS "%s"' % INDEX in line for line in report['needs_human'])

    diagnose(tmp_path, '--check', '-e', 'high_latency_create_missing_indexes=true')
    assert not index_present(db_8f)

    report = diagnose(tmp_path, '-e', 'high_latency_create_missing_indexes=true')
    assert index_present(db_8f)
    assert report['done'] and INDEX in report['done'][0]
    assert report['details']['after']['missing_indexes'] == []

    again = diagnose(tmp_path, '-e', 'high_latency_create_missing_indexes=true')
    assert again['done'] == [] and not any('missing_index' == f['kind'] for f in again['details']['findings'])
