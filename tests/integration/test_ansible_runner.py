"""The playbooks under ansible-runner the way AWX runs them: a private data dir (project/, inventory/, env/), the
collection on ANSIBLE_COLLECTIONS_PATH, the database password from an environment variable (what an AWX custom
credential type injects), and the report kept in the job's artifacts through set_stats."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import DB, ROOT

RUNNER = os.path.join(os.path.dirname(sys.executable), 'ansible-runner')


@pytest.fixture
def private_data_dir(korrigo_head, tmp_path):
    if not os.path.exists(RUNNER):
        pytest.fail('ansible-runner is not installed in the virtualenv (requirements-dev.txt)')
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    korrigo_head.seed('db_roles')  # triage connects as the read-only role korrigo_readonly
    pdd = tmp_path / 'job'
    for sub in ('inventory', 'env'):
        (pdd / sub).mkdir(parents=True)
    # AWX checks the project out; the playbooks are at its root.
    os.symlink(os.path.join(ROOT, 'playbooks'), str(pdd / 'project'))
    with open(os.path.join(ROOT, 'inventories', 'local', 'group_vars', 'korrigo.yml')) as handle:
        group_vars = yaml.safe_load(handle)
    group_vars.update(korrigo_db_name=korrigo_head.name, korrigo_log_file=str(tmp_path / 'django.log'),
                      korrigo_media_root=os.path.join(ROOT, 'tests', 'stack', '.run', 'media'),
                      # the secret is not in the inventory: AWX's credential injects it as an environment variable
                      korrigo_db_password="{{ lookup('ansible.builtin.env', 'KORRIGO_DB_PASSWORD') }}")
    (tmp_path / 'django.log').write_text('')
    (pdd / 'inventory' / 'hosts.yml').write_text(yaml.safe_dump({'all': {'children': {'korrigo': {
        'hosts': {'korrigo-local': {'ansible_connection': 'local',
                                    'ansible_python_interpreter': '{{ ansible_playbook_python }}'}},
        'vars': group_vars}}}}))
    (pdd / 'env' / 'extravars').write_text(yaml.safe_dump({
        'korrigo_report_dir': str(tmp_path / 'reports'), 'korrigo_max_changes': 200,
        'triage_db_user': 'korrigo_readonly', 'triage_db_password': 'korrigo_readonly'}))
    (pdd / 'env' / 'envvars').write_text(yaml.safe_dump({
        'ANSIBLE_COLLECTIONS_PATH': os.path.join(ROOT, '.cache', 'collections'),
        'KORRIGO_DB_PASSWORD': DB['login_password']}))
    (pdd / 'env' / 'passwords').write_text(yaml.safe_dump({}))  # no prompt expected (no vault, no become)
    (pdd / 'env' / 'settings').write_text(yaml.safe_dump({'job_timeout': 300, 'suppress_ansible_output': True}))
    return pdd


def run(pdd, playbook, ident):
    env = dict((k, v) for k, v in os.environ.items() if k not in ('ANSIBLE_CONFIG', 'ANSIBLE_COLLECTIONS_PATH'))
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    proc = subprocess.run([RUNNER, 'run', str(pdd), '-p', playbook, '--ident', ident], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    artifacts = pdd / 'artifacts' / ident
    stdout = (artifacts / 'stdout').read_text() if (artifacts / 'stdout').exists() else proc.stdout
    assert proc.returncode == 0 and (artifacts / 'rc').read_text().strip() == '0', stdout[-4000:] + proc.stderr
    assert (artifacts / 'status').read_text().strip() == 'successful'
    stats = []
    for path in glob.glob(str(artifacts / 'job_events' / '*.json')):
        with open(path) as handle:
            event = json.load(handle)
        if event.get('event') == 'playbook_on_stats':
            stats.append(event['event_data'])
    assert len(stats) == 1
    return stats[0]['artifact_data'], artifacts


def test_release_expired_locks_and_triage_under_ansible_runner(private_data_dir, korrigo_head, tmp_path):
    artifact, _events = run(private_data_dir, 'release_expired_locks.yml', 'locks')
    report = artifact['korrigo_reports']['korrigo-local']['lock_conflicts']
    assert report['schema'] == 'korrigo.ops/report/v1' and report['severity'] == 'P3'
    assert report['actions']['count'] == 5 and len(report['actions']['anonymous_ids']) == 5
    assert report['facts_after']['expired_total'] == 0
    assert report['files']['latest'] == str(tmp_path / 'reports' / 'lock_conflicts-korrigo-local-latest.json')
    assert os.path.exists(report['files']['html'])
    assert artifact['korrigo_fleet']['schools'] == 1 and artifact['korrigo_fleet']['failed'] == []
    assert korrigo_head.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()') == 0

    artifact, _events = run(private_data_dir, 'triage.yml', 'triage')
    triage = artifact['korrigo_reports']['korrigo-local']['triage']
    assert triage['scenario'] == 'triage' and triage['severity'] in ('P0', 'P1', 'P2', 'P3', 'none')
    assert triage['versions']['korrigo'] == 'head' and triage['run']['duration_seconds'] is not None

    artifact, _events = run(private_data_dir, 'audit_trail_check.yml', 'audit')
    assert artifact['korrigo_reports']['korrigo-local']['audit_events']['scenario'] == 'audit_events'
    shutil.rmtree(str(private_data_dir / 'artifacts'))
