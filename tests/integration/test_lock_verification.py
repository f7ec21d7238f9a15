"""The lock role's verification: a lock expired before the run and still there fails the run, wherever it falls
in the capped list; locks that expired during the run or were renewed do not. The verification alone is run (the
role's verify.yml) on facts shaped as copylock's gather_after returns them, then the whole playbook with a list
cut to one lock."""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
           ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
VERIFY_TASKS = os.path.join(ROOT, 'roles', 'lock_conflicts', 'tasks', 'verify.yml')
CHECKED_AT = 1796190000.0  # the database's time when the facts before were read


def lock(name, expires_at_epoch):
    return {'anonymous_id': name, 'copy_id': name, 'expires_at_epoch': expires_at_epoch, 'expired': True}


def verify(tmp_path, expired_after):
    playbook = tmp_path / 'verify.yml'
    playbook.write_text(json.dumps([{
        'hosts': 'korrigo', 'gather_facts': False,
        'vars': {
            'lock_conflicts_before': {'locks': {'checked_at_epoch': CHECKED_AT, 'expired_total': 3}},
            'lock_conflicts_released': {'korrigo_after': {'locks': {'expired': expired_after,
                                                                    'expired_total': len(expired_after)}}},
            'lock_conflicts_forced': {'skipped': True},
            'lock_conflicts_decision': {'release_expired': True},
        },
        'tasks': [{'ansible.builtin.include_tasks': VERIFY_TASKS}],
    }]))
    return subprocess.run(['ansible-playbook', str(playbook), '-i', os.path.join(ROOT, 'inventories', 'local'),
                           '-e', 'lock_conflicts_lock_age_minutes=60', '-e', 'lock_conflicts_list_limit=1'],
                          env=ENV, capture_output=True, text=True, timeout=120, check=False)


def test_a_lock_expired_before_the_run_and_left_fails_the_run(tmp_path):
    proc = verify(tmp_path, [lock('OLD-1', CHECKED_AT - 600)])
    assert proc.returncode != 0 and 'expired locks remain after remediation' in proc.stdout, proc.stdout[-2000:]
    assert 'OLD-1' in proc.stdout


def test_locks_that_expired_during_the_run_do_not_fail_it(tmp_path):
    proc = verify(tmp_path, [lock('NEW-1', CHECKED_AT + 5)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert verify(tmp_path, []).returncode == 0


def test_the_playbook_verifies_with_the_list_cut_to_one_lock(korrigo_head):
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    proc = subprocess.run(['ansible-playbook', os.path.join(ROOT, 'playbooks', 'release_expired_locks.yml'),
                           '-i', os.path.join(ROOT, 'inventories', 'local'),
                           '-e', 'korrigo_db_name=%s' % korrigo_head.name, '-e', 'lock_conflicts_list_limit=1'],
                          env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert 'Fail if a lock that was expired before the run is still there' in proc.stdout
    assert korrigo_head.scalar("SELECT count(*) FROM grading_copylock WHERE expires_at < now()") == 0
