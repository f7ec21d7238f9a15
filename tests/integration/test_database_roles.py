"""Least privilege: playbooks/database_roles.yml run by the DBA (the stack's `korrigo`, a superuser), then triage and
the facts with the diagnose role and every remediation with the remediate role, on both schema versions. A missing
grant gives a message naming it. The roles are cluster-wide: this run's have the database suffix in their name and
are dropped at the end."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import psycopg2
import pytest
import redis

from conftest import DB, DB_SUFFIX, ROOT, VERSIONS, dsn_for, run_module
from korrigo_stack import scenarios_latency

SUFFIX = DB_SUFFIX or '_test'
DIAGNOSE = 'korrigo_ops_diagnose' + SUFFIX
REMEDIATE = 'korrigo_ops_remediate' + SUFFIX
PASSWORDS = {DIAGNOSE: 'diagnose-Secret-%s' % SUFFIX, REMEDIATE: 'remediate-Secret-%s' % SUFFIX}
BROKER = 'redis://127.0.0.1:56379/0'
FINALIZE = 'grading.tasks.async_finalize_copy'


def playbook(*extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    variables = {'database_roles_diagnose_name': DIAGNOSE, 'database_roles_remediate_name': REMEDIATE,
                 'database_roles_diagnose_password': PASSWORDS[DIAGNOSE],
                 'database_roles_remediate_password': PASSWORDS[REMEDIATE],
                 'database_roles_databases': sorted(VERSIONS.values()),
                 'database_roles_login_db': VERSIONS['head']}
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'database_roles.yml'),
               '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', json.dumps(variables)] + list(extra)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope='module', name='db_roles')
def db_roles_fixture(databases):
    proc = playbook()
    try:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        yield proc
    finally:
        dropped = playbook('-e', 'database_roles_state=absent')
        assert dropped.returncode == 0, dropped.stdout[-3000:]
        conn = psycopg2.connect(dsn_for(VERSIONS['head']))
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", (DIAGNOSE, REMEDIATE))
            assert cur.fetchone()[0] == 0
        conn.close()


def as_role(db, role):
    return dict(DB, login_db=db.name, login_user=role, login_password=PASSWORDS[role])


def run_as(db, role, module, check_mode=False, **args):
    return run_module(module, check_mode=check_mode, **dict(as_role(db, role), **args))


def superuser(db, statement, params=None):
    conn = psycopg2.connect(dsn_for(db.name))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement, params)
    conn.close()


def test_the_roles_have_what_the_playbook_says(db_roles, korrigo):
    assert 'no_log' not in db_roles.stdout and PASSWORDS[DIAGNOSE] not in db_roles.stdout
    assert PASSWORDS[REMEDIATE] not in db_roles.stdout
    flags = dict((r['rolname'], r) for r in korrigo.query(
        "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, "
        "ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "WHERE m.member = r.oid ORDER BY 1) AS member_of FROM pg_roles r WHERE rolname IN (%s, %s)",
        (DIAGNOSE, REMEDIATE)))
    assert flags[DIAGNOSE]['member_of'] == ['pg_monitor']
    assert flags[REMEDIATE]['member_of'] == ['pg_read_all_stats', 'pg_signal_backend']
    for role in (DIAGNOSE, REMEDIATE):
        assert flags[role]['rolcanlogin'] and not flags[role]['rolsuper'] and not flags[role]['rolcreaterole']
    privileges = dict((row['p'], row['ok']) for row in korrigo.query(
        "SELECT p, has_table_privilege(%s, split_part(p, ':', 1), split_part(p, ':', 2)) AS ok FROM unnest(ARRAY["
        "'exams_copy:UPDATE', 'core_auditlog:INSERT', 'core_auditlog:UPDATE', 'core_auditlog:DELETE', "
        "'auth_user:UPDATE', 'exams_exam:UPDATE', 'grading_gradingevent:DELETE', 'exams_copy:DELETE']) AS p",
        (REMEDIATE,)))
    assert privileges == {'exams_copy:UPDATE': True, 'core_auditlog:INSERT': True, 'core_auditlog:UPDATE': False,
                          'core_auditlog:DELETE': False, 'auth_user:UPDATE': False, 'exams_exam:UPDATE': False,
                          'grading_gradingevent:DELETE': False, 'exams_copy:DELETE': False}
    assert korrigo.scalar("SELECT bool_and(has_table_privilege(%s, c.oid, 'SELECT') "
                          "AND NOT has_table_privilege(%s, c.oid, 'INSERT')) FROM pg_class c "
                          "JOIN pg_namespace n ON n.oid = c.relnamespace "
                          "WHERE n.nspname = 'public' AND c.relkind = 'r'", (DIAGNOSE, DIAGNOSE))


def test_the_playbook_converges(db_roles):
    again = playbook()
    assert again.returncode == 0 and 'changed=0' in again.stdout.split('PLAY RECAP')[-1], again.stdout[-3000:]


def test_facts_and_triage_with_the_diagnose_role(db_roles, korrigo_head, tmp_path):
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    facts = run_as(korrigo_head, DIAGNOSE, 'korrigo_facts')
    assert not facts.get('failed'), facts.get('msg')
    assert facts['ansible_facts']['korrigo']['locks']
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    log_file = tmp_path / 'django.log'
    log_file.write_text('')
    proc = subprocess.run(['ansible-playbook', os.path.join(ROOT, 'playbooks', 'triage.yml'),
                           '-i', os.path.join(ROOT, 'inventories', 'local'),
                           '-e', 'korrigo_report_dir=%s' % tmp_path, '-e', 'korrigo_log_file=%s' % log_file,
                           '-e', 'korrigo_db_name=%s' % korrigo_head.name,
                           '-e', 'triage_db_user=%s' % DIAGNOSE, '-e', 'triage_db_password=%s' % PASSWORDS[DIAGNOSE]],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / 'triage-korrigo-local.json').read_text())
    assert report['severity'] == 'P3' and report['details']['verdict']['remediation_roles'] == ['lock_conflicts']
    # Read-only indeed: a remediation with this role is refused, naming the grant.
    refused = run_as(korrigo_head, DIAGNOSE, 'copylock', expired=True)
    assert refused['failed'] and 'permission denied: %s lacks UPDATE/DELETE on table grading_copylock' % DIAGNOSE \
        in refused['msg'], refused['msg']
    assert 'see playbooks/database_roles.yml' in refused['msg']


def test_every_remediation_with_the_remediate_role(db_roles, korrigo, tmp_path):
    korrigo.seed('baseline')
    locks = korrigo.seed('locks')
    result = run_as(korrigo, REMEDIATE, 'copylock', expired=True)
    assert not result.get('failed') and result['count'] == 5, result.get('msg')

    finalization = korrigo.seed('finalization')
    result = run_as(korrigo, REMEDIATE, 'annotation_bounds', copy_ids=finalization['out_of_bounds_copy_ids'])
    assert not result.get('failed') and result['count'] > 0, result.get('msg')
    result = run_as(korrigo, REMEDIATE, 'annotation_bounds', mode='delete',
                    copy_ids=finalization['out_of_bounds_copy_ids'])
    assert not result.get('failed'), result.get('msg')
    result = run_as(korrigo, REMEDIATE, 'copy_status', copy_ids=finalization['worker_died_copy_ids'][:1])
    assert not result.get('failed') and result['count'] == 1, result.get('msg')
    if korrigo.version == '8f16b75':
        result = run_as(korrigo, REMEDIATE, 'copy_status', claim_for_remediation_user=True,
                        copy_ids=finalization['worker_died_copy_ids'][:1])
        assert not result.get('failed'), result.get('msg')

    korrigo.seed('audit')
    result = run_as(korrigo, REMEDIATE, 'audit_trail', record_notes=True)
    assert not result.get('failed'), result.get('msg')

    media = tmp_path / 'media'
    (media / 'temp_uploads').mkdir(parents=True)
    old = media / 'temp_uploads' / 'old.pdf'
    old.write_bytes(b'%PDF-1.4')
    os.utime(str(old), (time.time() - 30 * 3600,) * 2)
    result = run_as(korrigo, REMEDIATE, 'media_storage', media_root=str(media), clean_temp_uploads=True,
                    remove_orphaned_pages=True)
    assert not result.get('failed') and result['count'] == 1 and result['audit_rows'] == 1, result.get('msg')

    queue = 'korrigo_ops_roles_%s' % uuid.uuid4().hex[:8]
    copies = [str(uuid.uuid4())]
    try:
        result = run_as(korrigo, REMEDIATE, 'celery_task', broker_url=BROKER, task=FINALIZE, copy_ids=copies,
                        queue=queue)
        assert not result.get('failed') and result['count'] == 1 and result['audit_rows'] == 1, result.get('msg')
    finally:
        client = redis.Redis.from_url(BROKER)
        client.delete(queue, 'korrigo_ops:queued:%s:%s' % (FINALIZE, copies[0]))
    assert korrigo.scalar("SELECT count(*) FROM core_auditlog a JOIN auth_user u ON u.id = a.user_id "
                          "WHERE u.username = 'korrigo-ops' AND a.action LIKE 'korrigo_ops.%%'") > 5
    assert locks  # seeded


def test_copy_import_with_the_remediate_role(db_roles, korrigo):
    ids = korrigo.seed('import_stuck')
    try:
        result = run_as(korrigo, REMEDIATE, 'copy_import', media_root=ids['media_root'], stuck=True)
        assert not result.get('failed'), result.get('msg')
        assert result['changed'] is True
    finally:
        for copy_id in ids['stuck_copy_ids']:
            shutil.rmtree(os.path.join(ids['media_root'], 'copies', 'pages', copy_id), ignore_errors=True)


def test_pg_sessions_with_the_remediate_role(db_roles, korrigo):
    """The stalled sessions belong to a non-superuser (the remediate role itself here): pg_signal_backend ends
    them, pg_read_all_stats shows their state."""
    seeded = korrigo.seed('latency')
    pidfile = os.path.join(tempfile.mkdtemp(prefix='korrigo-roles-'), 'holder.pid')
    dsn = 'postgresql://%s:%s@127.0.0.1:55432/%s' % (REMEDIATE, PASSWORDS[REMEDIATE], korrigo.name)
    try:
        pids = scenarios_latency.start(dsn, seeded['contended_copy_id'], pidfile, max_seconds=120)
        time.sleep(1.2)
        result = run_as(korrigo, REMEDIATE, 'pg_sessions', idle_in_transaction_seconds=1)
        assert not result.get('failed') and result['count'] == 1, result.get('msg')
        assert [a['pid'] for a in result['actions']] == [pids['blocker_pid']]
    finally:
        scenarios_latency.stop(pidfile)


def test_a_missing_grant_is_named(db_roles, korrigo_head):
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    superuser(korrigo_head, 'REVOKE INSERT ON core_auditlog FROM %s' % REMEDIATE)
    try:
        before = korrigo_head.checksums()
        result = run_as(korrigo_head, REMEDIATE, 'copylock', expired=True)
        assert result['failed'] and korrigo_head.checksums() == before
        assert ('permission denied: %s lacks INSERT on table core_auditlog (grant it, see '
                'playbooks/database_roles.yml)' % REMEDIATE) in result['msg'], result['msg']
        assert result['missing_grant'] == {'role': REMEDIATE, 'privileges': ['INSERT'], 'object': 'core_auditlog',
                                           'type': 'table'}
    finally:
        superuser(korrigo_head, 'GRANT INSERT ON core_auditlog TO %s' % REMEDIATE)
    superuser(korrigo_head, 'REVOKE UPDATE ON exams_copy FROM %s' % REMEDIATE)
    try:
        result = run_as(korrigo_head, REMEDIATE, 'copylock', expired=True)
        assert 'permission denied: %s lacks UPDATE on table exams_copy (grant it' % REMEDIATE in result['msg'], \
            result['msg']
    finally:
        superuser(korrigo_head, 'GRANT UPDATE ON exams_copy TO %s' % REMEDIATE)
    # An identity column's sequence is not checked by PostgreSQL (the playbook grants USAGE for serial columns).
    superuser(korrigo_head, 'REVOKE USAGE ON SEQUENCE core_auditlog_id_seq FROM %s' % REMEDIATE)
    try:
        assert run_as(korrigo_head, REMEDIATE, 'copylock', expired=True)['count'] >= 5
    finally:
        superuser(korrigo_head, 'GRANT USAGE ON SEQUENCE core_auditlog_id_seq TO %s' % REMEDIATE)
