"""audit_trail against the real schema of both Korrigo versions: each gap kind, the controls, notes, and the
events expected per creation path (batch, individual, import, merge)."""

from ansible_collections.korrigo.ops.plugins.module_utils.creation import CREATION_PATH_SQL, creation_path_of

AUDIT_ACTION = 'korrigo_ops.audit_trail.gap'
# Controls created without import_pdf: no IMPORT event, and (HEAD batch, merges, individual STAGING) no VALIDATE.
NOT_IMPORTED_CONTROLS = ('ready', 'graded', 'individual', 'merged', 'retried', 'getorcreate', 'annotations', 'failed')


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


def test_expected_events_follow_the_creation_path(korrigo):
    seeded = korrigo.seed('audit')
    result = korrigo.run('audit_trail')
    assert result.get('failed') is not True, result
    found = gaps_by_copy(result)
    # Every copy counted by how it came into being, exactly as seeded.
    assert result['copies_by_creation_path'] == seeded['copies_by_creation_path']
    assert sum(result['copies_by_creation_path'].values()) == result['copies_checked']
    assert result['copies_by_creation_path']['batch'] > result['copies_checked'] // 2
    assert result['copies_by_creation_path']['individual'] == (2 if korrigo.version == 'head' else 0)
    # Batch, individual and merged copies have no IMPORT event and are never reported for it.
    for group in NOT_IMPORTED_CONTROLS:
        for copy_id in seeded['%s_copy_ids' % group]:
            assert copy_id not in found, (group, found[copy_id])
    assert [g['creation_path'] for g in result['gaps'] if g['kind'] == 'missing_import'] == ['import']
    # An import_pdf copy without its IMPORT event is a gap, with the rule it broke.
    noimport = [g for g in result['gaps'] if g['copy_id'] in seeded['noimport_copy_ids']]
    assert [(g['kind'], g['creation_path'], g['rule']) for g in noimport] == [
        ('missing_import', 'import', 'import_pdf copies have an IMPORT event')]
    novalidate = [g for g in result['gaps'] if g['copy_id'] in seeded['novalidate_copy_ids']]
    assert [(g['kind'], g['creation_path'], g['rule']) for g in novalidate] == [
        ('missing_validate', 'import', 'import_pdf copies past STAGING were validated by a person (VALIDATE)')]
    assert all(g['rule'] and g['creation_path'] in ('batch', 'individual', 'import', 'merge') for g in result['gaps'])


def test_batch_copy_without_validate_is_a_gap_on_8f16b75_only(korrigo):
    seeded = korrigo.seed('audit')
    result = korrigo.run('audit_trail')
    batch = [g for g in result['gaps'] if g['copy_id'] in seeded['batchnovalidate_copy_ids']]
    if korrigo.version == 'head':  # the batch upload auto-validates: validated_at set, no VALIDATE event
        assert batch == []
        assert result['gap_counts']['missing_validate'] == 1
    else:  # a person validated 8f16b75 batch copies
        assert [(g['kind'], g['creation_path'], g['status'], g['rule']) for g in batch] == [
            ('missing_validate', 'batch', 'READY',
             '8f16b75 batch copies past STAGING were validated by a person (VALIDATE)')]
        assert result['gap_counts']['missing_validate'] == 2


def test_individual_copy_past_staging_must_have_validate(korrigo_head):
    seeded = korrigo_head.seed('audit')
    stuck, moved = seeded['individual_copy_ids']
    merged = seeded['merged_copy_ids'][0]
    # An individual upload only leaves STAGING through validate_copy; a merge never has VALIDATE.
    korrigo_head.query("UPDATE exams_copy SET status = 'READY' WHERE id = %s RETURNING id", (moved,))
    korrigo_head.query("UPDATE exams_copy SET status = 'GRADED' WHERE id = %s RETURNING id", (merged,))
    result = korrigo_head.run('audit_trail')
    found = dict((g['copy_id'], g) for g in result['gaps'] if g['kind'] == 'missing_validate')
    assert stuck not in gaps_by_copy(result)
    assert found[moved]['creation_path'] == 'individual' and found[moved]['status'] == 'READY'
    assert 'validate_copy' in found[moved]['rule']
    assert gaps_by_copy(result)[merged] == ['missing_finalize']  # merged: no IMPORT/VALIDATE expected
    assert result['copies_by_creation_path'] == seeded['copies_by_creation_path']


def test_sql_and_python_creation_path_rules_agree(korrigo):
    korrigo.seed('baseline')
    korrigo.seed('audit')
    rows = korrigo.query(
        "SELECT c.pdf_source, c.status, c.validated_at, " + CREATION_PATH_SQL + " AS creation_path,"
        " EXISTS (SELECT 1 FROM grading_gradingevent e WHERE e.copy_id = c.id AND e.action = 'IMPORT') AS has_import"
        " FROM exams_copy c WHERE %(always)s", {'always': True})
    assert len(rows) > 30
    for row in rows:
        assert row['creation_path'] == creation_path_of(row['pdf_source'], row['has_import'], row['status'],
                                                        row['validated_at']), row
    assert set(row['creation_path'] for row in rows) == (
        {'batch', 'individual', 'import', 'merge'} if korrigo.version == 'head' else {'batch', 'import', 'merge'})


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


def test_without_count_repeats_the_gaps_are_the_same(korrigo):
    korrigo.seed('audit')
    full = korrigo.run('audit_trail')
    gaps_only = korrigo.run('audit_trail', count_repeats=False)
    for key in ('copies_checked', 'copies_with_gaps', 'gap_counts', 'gaps', 'copies_by_creation_path'):
        assert gaps_only[key] == full[key], key
    repeats = gaps_only['normal_repeats']
    assert repeats['copies_with_repeated_annotation_events'] is None and repeats['playbook_duplicate_groups'] is None
    for key in ('copies_with_failed_attempts', 'success_hidden_by_get_or_create'):
        assert repeats[key] == full['normal_repeats'][key], key


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
        assert row['metadata']['creation_path'] in ('batch', 'import') and row['metadata']['rule']
    assert dict((k, sorted(v)) for k, v in noted.items()) == \
        dict((k, sorted(v)) for k, v in seeded['expected_gaps'].items())
    # No note for the copies created without import_pdf that merely lack IMPORT (or VALIDATE on HEAD).
    not_imported = [c for group in NOT_IMPORTED_CONTROLS for c in seeded['%s_copy_ids' % group]]
    if korrigo.version == 'head':
        not_imported += seeded['batchnovalidate_copy_ids']
    assert not set(noted) & set(not_imported)
    assert len(rows) == n_gaps
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


def test_repeat_counts_read_beside_the_gap_check_agree_with_one_statement(korrigo):
    """count_repeats reads the repeat counts on a second connection in the same snapshot; they are the counts the
    single statement (GAPS_CTES with count_repeats) gives."""
    import psycopg2
    import psycopg2.extras
    from conftest import dsn_for
    from ansible_collections.korrigo.ops.plugins.module_utils import audit_rules
    from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version

    korrigo.seed('audit')
    result = korrigo.run('audit_trail', count_repeats=True)
    assert result.get('failed') is not True, result
    conn = psycopg2.connect(dsn_for(korrigo.name))
    try:
        cursor = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        rules = detect_version(cursor)
        statement, params = audit_rules.gap_report_statement(rules, 50)
        cursor.execute(statement, dict(params, count_repeats=True))
        one_statement = cursor.fetchone()
    finally:
        conn.close()
    assert result['normal_repeats'] == one_statement['normal_repeats']
    # Both forms share audit_rules' two rules: the same counts by plain SQL, written here from their definitions.
    conn = psycopg2.connect(dsn_for(korrigo.name))
    try:
        with conn.cursor() as cursor:
            cursor.execute("""
                SELECT count(DISTINCT copy_id) FILTER (WHERE action IN ('CREATE_ANN', 'UPDATE_ANN', 'DELETE_ANN')),
                       count(*)
                  FROM (SELECT copy_id, action FROM grading_gradingevent
                         GROUP BY copy_id, action, actor_id HAVING count(*) > 1) repeated""")
            annotation_copies, duplicate_groups = cursor.fetchone()
    finally:
        conn.close()
    assert result['normal_repeats']['copies_with_repeated_annotation_events'] == annotation_copies > 0
    assert result['normal_repeats']['playbook_duplicate_groups'] == duplicate_groups > 0


def test_korrigo_facts_audit_subset_is_the_audit_trail_check(korrigo):
    """korrigo_facts' audit subset (triage's audit check) gives audit_trail's gaps and counts; ``all`` leaves it out."""
    korrigo.seed('audit')
    checked = korrigo.run('audit_trail', count_repeats=False, list_limit=500)
    facts = korrigo.run('korrigo_facts', gather_subset=['locks', 'audit'], list_limit=500)
    assert facts.get('failed') is not True, facts
    audit = facts['ansible_facts']['korrigo']['audit']
    for key in ('copies_checked', 'copies_with_gaps', 'gap_counts', 'copies_by_creation_path', 'gaps', 'normal_repeats'):
        assert audit[key] == checked[key], key
    assert 'audit' not in korrigo.run('korrigo_facts')['ansible_facts']['korrigo']
