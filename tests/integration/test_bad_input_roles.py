"""Every role refuses a bad input before its first change: with an incident seeded, a run with one bad input exits
non-zero, names the input, and leaves every table (and, for import_stuck, every media file) as it was."""
import hashlib
import json
import os
import subprocess

import pytest

from conftest import ROOT

UUID = '3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b'


def run_playbook(playbook, database, extra, tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    extra = dict({'korrigo_db_name': database}, **extra)
    # Always an absolute report dir: fleet_summary.yml writes the fleet summary even for a refused run, and a
    # relative korrigo_report_dir lands next to the playbooks (reported; the unit tests cover its validation).
    extra['korrigo_report_dir'] = str(tmp_path / 'reports')
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', playbook),
               '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', json.dumps(extra)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False,
                          cwd=str(tmp_path))
    return proc, proc.stdout + proc.stderr


def media_digest(root):
    digest = {}
    for base, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, 'rb') as handle:
                digest[os.path.relpath(path, root)] = (hashlib.md5(handle.read()).hexdigest(),
                                                       os.stat(path).st_mtime_ns)
    return digest


def assert_refused(proc, output, names):
    assert proc.returncode != 0, output[-3000:]
    # validate.yml's message, or the role's argument_specs (types and choices), which Ansible checks even earlier
    assert ('invalid input, nothing was changed' in output
            or 'Validation of arguments failed' in output), output[-3000:]
    for name in names:
        assert name in output, (name, output[-3000:])


# (role, playbook, seed scenario, bad inputs, the inputs the message must name)
CASES = [
    # The case: a malformed id next to expired locks (released and committed before the id was refused), with
    # other bad inputs: every problem is listed in the one failure and the expired locks stay.
    ('lock_conflicts', 'release_expired_locks.yml', 'locks',
     {'lock_conflicts_force_copy_ids': [UUID, 'not-a-uuid'], 'lock_conflicts_force_reason': '',
      'korrigo_lock_timeout_ms': -5, 'lock_conflicts_lock_age_minutes': -1},
     ['lock_conflicts_force_copy_ids', 'not-a-uuid', 'lock_conflicts_force_reason', 'korrigo_lock_timeout_ms',
      'lock_conflicts_lock_age_minutes']),
    ('finalization_failing', 'retry_failed_finalizations.yml', 'finalization',
     {'finalization_failing_annotation_mode': 'truncate'}, ['finalization_failing_annotation_mode']),
    ('import_stuck', 'recover_stuck_imports.yml', 'import_stuck',
     {'import_stuck_backup_dir': 'relative/backup'}, ['import_stuck_backup_dir']),
    ('high_latency', 'diagnose_latency.yml', 'latency',
     {'high_latency_terminate_sessions': True, 'high_latency_idle_in_transaction_seconds': -1},
     ['high_latency_idle_in_transaction_seconds']),
    ('audit_events', 'audit_trail_check.yml', 'audit',
     {'audit_events_record_notes': True, 'korrigo_statement_timeout_ms': 0}, ['korrigo_statement_timeout_ms']),
    ('triage', 'triage.yml', 'baseline', {'korrigo_metrics_url': 'ftp://127.0.0.1/metrics'}, ['korrigo_metrics_url']),
    ('copy_dossier', 'copy_dossier.yml', 'baseline', {'korrigo_copy': 'x', 'copy_dossier_log_lines': 'many'},
     ['copy_dossier_log_lines']),
]


# Every role on both schema versions (the refusal comes before any database access, so the version must not change it).
PARAMS = [(version,) + case for version in ('head', '8f16b75') for case in CASES]


@pytest.mark.parametrize('korrigo,role,playbook,scenario,bad,names', PARAMS, indirect=['korrigo'],
                         ids=['%s-%s' % (p[0], p[1]) for p in PARAMS])
def test_one_bad_input_changes_nothing(korrigo, tmp_path, monkeypatch, role, playbook, scenario, bad, names):
    """Matrix: bad input given to a role (malformed UUID next to expired locks, missing force reason, unknown enum,
    relative path, negative threshold, zero timeout, non-http URL, non-numeric limit) | the run fails before its
    first change, naming every bad input; no table and no media file changes (expired locks are not released)
    Versions: head, 8f16b75 (every role)"""
    media = tmp_path / 'media'
    media.mkdir()
    monkeypatch.setenv('KORRIGO_MEDIA_ROOT', str(media))
    korrigo.seed(scenario)
    expired = korrigo.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()')
    assert role != 'lock_conflicts' or expired > 0
    before, files_before = korrigo.checksums(), media_digest(str(media))
    proc, output = run_playbook(playbook, korrigo.name, dict(bad, korrigo_media_root=str(media)), tmp_path)
    assert_refused(proc, output, names)
    assert korrigo.checksums() == before
    assert media_digest(str(media)) == files_before
    assert korrigo.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()') == expired
    if role == 'import_stuck':
        assert files_before, 'the import_stuck scenario wrote no media file to compare'
