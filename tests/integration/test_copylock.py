"""copylock against the real schema of both Korrigo versions."""
import uuid

from conftest import finish_module

REMEDIATION_USER = 'korrigo-ops'


def unlock_events(db, copy_ids):
    return db.query("SELECT e.copy_id::text AS copy_id, u.username, e.metadata FROM grading_gradingevent e "
                    "JOIN auth_user u ON u.id = e.actor_id WHERE e.action = 'UNLOCK' AND e.copy_id = ANY(%s::uuid[])",
                    (list(copy_ids),))


def copy_states(db, copy_ids):
    rows = db.query("SELECT id::text AS id, status, locked_at, locked_by_id FROM exams_copy WHERE id = ANY(%s::uuid[])",
                    (list(copy_ids),))
    return dict((r['id'], r) for r in rows)


def test_expired_locks_are_released_and_copies_reconciled(korrigo):
    seeded = korrigo.seed('locks')
    expired, active = seeded['expired_copy_ids'], seeded['active_copy_ids']
    drafts_before = korrigo.scalar("SELECT count(*) FROM grading_draftstate")

    result = korrigo.run('copylock', expired=True, remediation_user=REMEDIATION_USER)

    assert result.get('failed') is not True, result
    assert result['changed'] is True and result['count'] == 5
    assert result['korrigo_version'] == korrigo.version
    assert sorted(a['copy_id'] for a in result['actions']) == sorted(expired)
    assert all(a['before']['status'] == 'LOCKED' and a['after']['status'] == 'READY' for a in result['actions'])
    states = copy_states(korrigo, expired)
    assert all(s['status'] == 'READY' and s['locked_at'] is None and s['locked_by_id'] is None
               for s in states.values())
    events = unlock_events(korrigo, expired)
    assert sorted(e['copy_id'] for e in events) == sorted(expired)
    assert all(e['username'] == REMEDIATION_USER for e in events)
    assert korrigo.scalar("SELECT count(*) FROM core_auditlog WHERE action = 'korrigo_ops.copylock.release' "
                          "AND resource_id = ANY(%s) AND user_id IS NOT NULL AND ip_address IS NOT NULL",
                          (expired,)) == 5
    # Active locks and their copies are untouched; teachers' drafts are never deleted.
    assert korrigo.scalar("SELECT count(*) FROM grading_copylock WHERE copy_id = ANY(%s::uuid[])", (active,)) == 2
    assert all(s['status'] == 'LOCKED' for s in copy_states(korrigo, active).values())
    assert korrigo.scalar("SELECT count(*) FROM grading_draftstate") == drafts_before


def test_second_run_reports_no_change(korrigo):
    korrigo.seed('locks')
    assert korrigo.run('copylock', expired=True)['count'] == 5
    checksums = korrigo.checksums()
    again = korrigo.run('copylock', expired=True)
    assert again['changed'] is False and again['count'] == 0 and again['actions'] == []
    assert korrigo.checksums() == checksums


def test_check_mode_changes_no_row_and_predicts_the_real_run(korrigo):
    korrigo.seed('locks')
    checksums = korrigo.checksums()
    dry = korrigo.run('copylock', check_mode=True, diff=True, expired=True)
    assert dry['changed'] is True and dry['count'] == 5 and dry['check_mode'] is True
    assert korrigo.checksums() == checksums
    assert set(dry['diff']['before']['locks']) == set(dry['diff']['after']['locks'])
    real = korrigo.run('copylock', expired=True)
    assert [a['copy_id'] for a in real['actions']] == [a['copy_id'] for a in dry['actions']]


def test_lock_renewed_after_facts_were_read_survives(korrigo):
    seeded = korrigo.seed('locks')
    facts = korrigo.run('korrigo_facts', gather_subset=['locks'])['ansible_facts']['korrigo']
    assert facts['locks']['expired_total'] == 5
    renewed = seeded['expired_copy_ids'][0]
    korrigo.query("UPDATE grading_copylock SET expires_at = now() + interval '10 minutes' "
                  "WHERE copy_id = %s RETURNING id", (renewed,))
    result = korrigo.run('copylock', expired=True)
    assert result['count'] == 4
    assert renewed not in [a['copy_id'] for a in result['actions']]
    assert copy_states(korrigo, [renewed])[renewed]['status'] == 'LOCKED'


def test_active_lock_needs_force_and_reason(korrigo):
    seeded = korrigo.seed('locks')
    active = seeded['active_copy_ids'][0]
    kept = korrigo.run('copylock', copy_ids=[active])
    assert kept['changed'] is False and [k['copy_id'] for k in kept['kept']] == [active]
    refused = korrigo.run('copylock', copy_ids=[active], force=True)
    assert refused['failed'] and 'reason' in refused['msg']
    forced = korrigo.run('copylock', copy_ids=[active], force=True, reason='ticket 42: browser crash')
    assert forced['count'] == 1 and forced['actions'][0]['expired'] is False
    meta = unlock_events(korrigo, [active])[0]['metadata']
    assert meta['reason'] == 'ticket 42: browser crash' and meta['forced'] is True


def test_bad_input_fails_clearly_and_changes_nothing(korrigo):
    seeded = korrigo.seed('locks')
    checksums = korrigo.checksums()
    cases = [
        (dict(expired=True, login_password='wrong'), 'authentication failed'),
        (dict(expired=True, login_port=1), 'unreachable'),
        (dict(copy_ids=['not-a-uuid']), 'malformed copy id'),
        (dict(copy_ids=[seeded['expired_copy_ids'][0], str(uuid.uuid4())]), 'unknown copy ids'),
        (dict(), 'empty selector'),
        (dict(copy_ids=[]), 'empty selector'),
        (dict(expired=True, max_changes=4), 'more than max_changes=4'),
        (dict(expired=True, remediation_user='nobody'), "remediation user 'nobody' does not exist"),
        (dict(expired=True, login_db='postgres'), "does not hold Korrigo's schema"),
    ]
    for args, message in cases:
        result = korrigo.run('copylock', **args)
        assert result.get('failed') is True, (args, result)
        assert message in result['msg'], (args, result['msg'])
        assert 'stack-secret' not in result['msg']  # the password never shows up
    assert korrigo.checksums() == checksums


def test_password_is_not_logged(korrigo):
    result = korrigo.run('copylock', expired=True, login_password='wrong-Secret-123')
    assert 'wrong-Secret-123' not in str(result)


def test_two_concurrent_runs_release_each_lock_once(korrigo):
    seeded = korrigo.seed('locks')
    runs = [korrigo.start('copylock', expired=True) for _run in range(2)]
    results = [finish_module(r) for r in runs]
    assert all(r.get('failed') is not True for r in results), results
    assert sum(r.get('count', 0) for r in results) == 5
    events = unlock_events(korrigo, seeded['expired_copy_ids'])
    assert len(events) == 5 and len(set(e['copy_id'] for e in events)) == 5


def test_gather_after_returns_the_facts_korrigo_facts_reads_after_the_commit(korrigo):
    """gather_after: the lock role verifies from the release's own result; it is what korrigo_facts reads next,
    and in check mode the state left unchanged."""
    korrigo.seed('locks')
    dry = korrigo.run('copylock', check_mode=True, expired=True, gather_after=['copies', 'locks'], actions_limit=50)
    assert dry['korrigo_after']['locks']['expired_total'] == 5
    released = korrigo.run('copylock', expired=True, gather_after=['copies', 'locks'], actions_limit=50)
    assert released.get('failed') is not True, released
    after = korrigo.run('korrigo_facts', gather_subset=['copies', 'locks'], list_limit=50)['ansible_facts']['korrigo']
    mine = released['korrigo_after']
    assert mine['locks']['expired_total'] == 0 and mine['locks']['active'] == 2
    assert mine['copies_by_status'] == after['copies_by_status']
    for key in ('total', 'active', 'expired_total', 'locked_without_valid_lock', 'expired_by_owner'):
        assert mine['locks'][key] == after['locks'][key], key
    assert 'korrigo_after' not in korrigo.run('copylock', expired=True)
