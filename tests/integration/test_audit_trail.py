"""audit_trail against the real schema of both Korrigo versions: each gap kind, the controls, notes."""

AUDIT_ACTION = 'korrigo_ops.audit_trail.gap'


def gaps_by_copy(result):
    found = {}
    for gap in result['gaps']:
        found.setdefault(gap['copy_id'], []).append(gap['kind'])
    return dict((k, sorted(v)) for k, v in found.items())


def test_each_gap_kind_is_found_and_controls_are_clean(korrigo):
    seeded = korrigo.seed('audit')
    result = korrigo.run('audit_trail')
    assert result.get('failed') is not True, result
    assert result['changed'] is False and result['count'] == 0
    assert result['korrigo_version'] == korrigo.version
    expected = dict((k, sorted(v)) for k, v in seeded['expected_gaps'].items())
    assert gaps_by_copy(result) == expected
    assert not set(seeded['clean_copy_ids']) & set(gaps_by_copy(result))
    if korrigo.version == 'head':  # no lock workflow: LOCK/UNLOCK oddities are not gaps
        assert result['gap_counts']['unpaired_lock'] == 0 and result['gap_counts']['missing_lock'] == 0
    else:
        assert result['gap_counts']['missing_lock'] == 1 and result['gap_counts']['unpaired_unlock'] == 1


def test_normal_repeats_are_counted_not_reported(korrigo):
    seeded = korrigo.seed('audit')
    result = korrigo.run('audit_trail')
    repeats = result['normal_repeats']
    # failed attempts: retried, getorcreate, failed
    assert repeats['copies_with_failed_attempts'] == 3
    assert repeats['success_hidden_by_get_or_create'] == 1
    assert repeats['copies_with_repeated_annotation_events'] >= 1
    # The playbook's (copy, action, actor) query flags far more than the one real duplicate.
    assert repeats['playbook_duplicate_groups'] > result['gap_counts']['duplicate_finalize'] == 1
    for control in ('retried', 'getorcreate', 'annotations', 'failed'):
        assert seeded['%s_copy_ids' % control][0] not in gaps_by_copy(result)


def test_baseline_and_lock_scenarios_have_complete_trails(korrigo):
    korrigo.seed('baseline')
    korrigo.seed('locks')
    result = korrigo.run('audit_trail')
    assert result['copies_with_gaps'] == 0, result['gaps']
    assert result['copies_checked'] == 20


def test_notes_are_recorded_once_per_gap_and_never_as_grading_events(korrigo):
    seeded = korrigo.seed('audit')
    events_before = korrigo.scalar("SELECT count(*) FROM grading_gradingevent")
    n_gaps = sum(len(v) for v in seeded['expected_gaps'].values())

    checksums = korrigo.checksums()
    dry = korrigo.run('audit_trail', check_mode=True, diff=True, record_notes=True)
    assert dry['changed'] is True and dry['count'] == n_gaps
    assert korrigo.checksums() == checksums
    assert len(dry['diff']['after']['notes']) == n_gaps

    real = korrigo.run('audit_trail', record_notes=True)
    assert real['changed'] is True and real['count'] == n_gaps and real['audit_rows'] == n_gaps
    assert [a['note_key'] for a in real['actions']] == [a['note_key'] for a in dry['actions']]
    rows = korrigo.query("SELECT a.resource_id, a.metadata, u.username FROM core_auditlog a "
                         "JOIN auth_user u ON u.id = a.user_id WHERE a.action = %s", (AUDIT_ACTION,))
    noted = {}
    for row in rows:
        noted.setdefault(row['resource_id'], []).append(row['metadata']['gap'])
        assert row['username'] == 'korrigo-ops' and row['metadata']['run_by'] == 'korrigo-ops'
        assert row['metadata']['missing']
    assert dict((k, sorted(v)) for k, v in noted.items()) == \
        dict((k, sorted(v)) for k, v in seeded['expected_gaps'].items())
    assert korrigo.scalar("SELECT count(*) FROM grading_gradingevent") == events_before

    checksums = korrigo.checksums()
    again = korrigo.run('audit_trail', record_notes=True)
    assert again['changed'] is False and again['count'] == 0
    assert all(g['noted'] for g in again['gaps'])
    assert korrigo.checksums() == checksums


def test_max_changes_refuses_without_writing(korrigo):
    korrigo.seed('audit')
    checksums = korrigo.checksums()
    refused = korrigo.run('audit_trail', record_notes=True, max_changes=2)
    assert refused['failed'] is True and 'more than max_changes=2' in refused['msg']
    assert korrigo.checksums() == checksums


def test_report_runs_with_a_read_only_role(korrigo):
    korrigo.seed('db_roles')
    korrigo.seed('audit')
    result = korrigo.run('audit_trail', login_user='korrigo_readonly', login_password='korrigo_readonly')
    assert result.get('failed') is not True, result
    assert result['copies_with_gaps'] > 0
    refused = korrigo.run('audit_trail', record_notes=True, login_user='korrigo_readonly',
                          login_password='korrigo_readonly')
    assert refused['failed'] is True
