"""Faults in the middle of a remediation: the database session killed, the broker down, the worker killed inside
finalize, the disk full while pages are written. Each leaves the old state (or a state the next run handles) and
the rerun converges.

The shared stack is never stopped: the database fault terminates the module's own backend
(``pg_terminate_backend`` of application_name ``korrigo.ops:<module>``) while it waits on a row lock this test
holds; Redis down is a broker URL on a closed port (127.0.0.1:1), not a stopped Redis; the worker killed inside
finalize is the state Korrigo's finalize leaves committed when its worker dies (GRADING_IN_PROGRESS, retries + 1, no
event since) - the stand-in worker finalizes in one transaction, so a real ``docker kill`` of it could only roll
back, and stopping the shared worker would break the other suites."""
import hashlib
import json
import os
import shutil
import subprocess
import time

import psycopg2
import pytest

from conftest import ROOT, dsn_for, finish_module
from korrigo_stack import scenarios_import as pdfs

CLOSED_BROKER = 'redis://127.0.0.1:1/0'


def wait_for_session(conn, application_name, timeout=30):
    """pid of the module's session once it waits on a lock."""
    deadline = time.time() + timeout
    with conn.cursor() as cur:
        while time.time() < deadline:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                        (application_name,))
            row = cur.fetchone()
            if row:
                return row[0]
            time.sleep(0.1)
    pytest.fail('%s never waited on the lock' % application_name)


@pytest.fixture(name='holder')
def holder_fixture(korrigo):
    """A second connection (a teacher's transaction) and a third (the DBA) on the same database."""
    conns = [psycopg2.connect(dsn_for(korrigo.name)) for _i in range(2)]
    conns[1].autocommit = True
    yield conns
    for conn in conns:
        conn.rollback() if not conn.autocommit else None
        conn.close()


def test_backend_terminated_while_releasing_locks_rolls_back_and_the_rerun_converges(korrigo, holder):
    """Matrix: PostgreSQL backend of copylock terminated mid-remediation (pg_terminate_backend while it waits on a
    row lock) | the module fails with a clear message, nothing is released, the rerun releases every expired lock
    once and a third run changes nothing"""
    korrigo.seed('locks')
    expired = korrigo.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()')
    assert expired > 0
    before = korrigo.checksums()
    teacher, dba = holder
    with teacher.cursor() as cur:  # hold every expired lock row, as a finalize holds its copy
        cur.execute('SELECT id FROM grading_copylock WHERE expires_at < now() FOR UPDATE')
    started = korrigo.start('copylock', expired=True, lock_timeout_ms=120000)
    pid = wait_for_session(dba, 'korrigo.ops:copylock')
    with dba.cursor() as cur:
        cur.execute('SELECT pg_terminate_backend(%s)', (pid,))
    result = finish_module(started)
    teacher.rollback()
    assert result.get('failed') is True, result
    assert 'terminat' in result['msg'] or 'connection' in result['msg'].lower(), result['msg']
    assert 'Traceback' not in result['msg']
    assert korrigo.checksums() == before

    rerun = korrigo.run('copylock', expired=True)
    assert rerun.get('failed') is not True and rerun['count'] == expired, rerun
    assert korrigo.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()') == 0
    assert korrigo.run('copylock', expired=True)['changed'] is False


def run_playbook(playbook, database, extra, tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    extra = dict({'korrigo_db_name': database, 'korrigo_report_dir': str(tmp_path / 'reports')}, **extra)
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', playbook),
               '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', json.dumps(extra)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, proc.stdout + proc.stderr


def test_broker_down_fails_the_finalization_role_before_any_change(korrigo, tmp_path):
    """Matrix: Redis down during retry_failed_finalizations (broker URL on closed port 127.0.0.1:1) | clear failure
    naming the broker before the first change: no copy made finalizable, no annotation clamped, nothing queued"""
    korrigo.seed('finalization')
    before = korrigo.checksums()
    proc, output = run_playbook('retry_failed_finalizations.yml', korrigo.name,
                                {'korrigo_broker_url': CLOSED_BROKER}, tmp_path)
    assert proc.returncode != 0, output[-3000:]
    assert 'korrigo_broker_url' in output and '127.0.0.1:1' in output, output[-3000:]
    assert korrigo.checksums() == before


def test_worker_killed_inside_finalize_is_found_stale_and_made_finalizable(korrigo):
    """Matrix: Celery worker killed inside finalize (copy left GRADING_IN_PROGRESS, retries + 1, no event since) |
    the next run finds it stale by last activity (cause worker_died), copy_status makes it finalizable for the
    running version once; a copy whose finalize may still run is left alone"""
    seeded = korrigo.seed('finalization')
    copy_id = seeded['failed_once_copy_ids'][0]
    # What Korrigo's finalize commits before flattening: the status and the attempt; its worker then dies.
    korrigo.query("UPDATE exams_copy SET status = 'GRADING_IN_PROGRESS', grading_retries = grading_retries + 1, "
                  "grading_error_message = NULL WHERE id = %s RETURNING id", (copy_id,))
    korrigo.query("UPDATE grading_gradingevent SET \"timestamp\" = now() - interval '3 hours' WHERE copy_id = %s "
                  "RETURNING id", (copy_id,))
    facts = korrigo.run('korrigo_facts', gather_subset=['finalizations'], stale_after_minutes=30)
    copies = dict((c['copy_id'], c) for c in facts['ansible_facts']['korrigo']['finalizations']['copies'])
    assert copies[copy_id]['cause'] == 'worker_died' and copies[copy_id]['stale'] is True

    young = korrigo.run('copy_status', copy_ids=[copy_id], stale_after_minutes=600)
    assert young['changed'] is False and 'still be running' in young['skipped'][0]['reason'], young
    result = korrigo.run('copy_status', copy_ids=[copy_id])
    expected = 'READY' if korrigo.version == 'head' else 'GRADING_FAILED'
    assert result['count'] == 1 and result['actions'][0]['after']['status'] == expected, result
    assert korrigo.scalar('SELECT status FROM exams_copy WHERE id = %s', (copy_id,)) == expected
    assert korrigo.run('copy_status', copy_ids=[copy_id])['changed'] is False


@pytest.fixture(name='full_disk')
def full_disk_fixture(tmp_path):
    """A 256 KiB tmpfs as MEDIA_ROOT (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip('mounting a tmpfs needs root')
    mount = tmp_path / 'media'
    mount.mkdir()
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: %s' % proc.stderr.strip())
    yield mount
    subprocess.run(['umount', '-l', str(mount)], check=False)


def tree(root):
    found = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, root)] = hashlib.md5(handle.read()).hexdigest()
    return found


def test_disk_full_while_writing_pages_leaves_no_half_written_booklet(korrigo, tmp_path, monkeypatch, full_disk):
    """Matrix: disk full while copy_import writes page images (256 KiB tmpfs MEDIA_ROOT, valid 12-page PDF) | the
    import fails naming the disk, no booklet or page row is written, no partial page file is left behind; with
    space again the rerun imports the copy"""
    seeded_media = tmp_path / 'seeded'
    seeded_media.mkdir()
    monkeypatch.setenv('KORRIGO_MEDIA_ROOT', str(seeded_media))
    ids = korrigo.seed('import_stuck')
    copy_id = ids['valid_copy_ids'][0]
    source = ids['files'][copy_id]['path']
    big = pdfs.valid_pdf(12)
    assert len(big) < 64 * 1024
    target = full_disk / source
    target.parent.mkdir(parents=True)
    target.write_bytes(big)
    korrigo.query('UPDATE exams_copy SET pdf_source = pdf_source WHERE id = %s RETURNING id', (copy_id,))
    before, files_before = korrigo.checksums(), tree(str(full_disk))

    result = korrigo.run('copy_import', copy_ids=[copy_id], media_root=str(full_disk))
    assert result.get('failed') is True, result
    assert 'space' in result['msg'].lower() or 'ENOSPC' in result['msg'] or 'disk' in result['msg'].lower(), result
    assert korrigo.checksums() == before
    assert tree(str(full_disk)) == files_before

    roomy = tmp_path / 'roomy'
    shutil.copytree(str(full_disk), str(roomy))
    again = korrigo.run('copy_import', copy_ids=[copy_id], media_root=str(roomy))
    assert again.get('failed') is not True and again['imported'] == 1, again
    assert korrigo.scalar('SELECT count(*) FROM exams_copy_booklets WHERE copy_id = %s', (copy_id,)) >= 1
