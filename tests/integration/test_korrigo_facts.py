"""korrigo_facts reads the real schema of both versions and never changes it."""


def facts(korrigo, **args):
    result = korrigo.run('korrigo_facts', **args)
    assert result.get('failed') is not True, result
    assert result['changed'] is False
    return result['ansible_facts']['korrigo']


def test_lock_facts_match_the_seeded_incident(korrigo):
    seeded = korrigo.seed('locks')
    checksums = korrigo.checksums()
    gathered = facts(korrigo)
    assert gathered['version']['name'] == korrigo.version
    locks = gathered['locks']
    assert (locks['total'], locks['active'], locks['expired_total']) == (7, 2, 5)
    assert locks['older_than_threshold'] == 1  # the lock taken 3 hours ago and still renewed
    assert sorted(lock['copy_id'] for lock in locks['expired']) == sorted(seeded['expired_copy_ids'])
    assert locks['locked_without_valid_lock'] == 5
    assert gathered['copies_by_status']['LOCKED'] == 7
    assert korrigo.checksums() == checksums


def test_gather_subset_limits_the_queries(korrigo):
    korrigo.seed('locks')
    gathered = facts(korrigo, gather_subset=['locks'])
    assert set(gathered) == {'version', 'locks', 'thresholds'}


def test_list_limit_caps_the_lists_not_the_totals(korrigo):
    # (The read-only transaction is pinned in tests/unit/plugins/module_utils/test_read_session.py.)
    korrigo.seed('locks')
    gathered = facts(korrigo, gather_subset=['all'], list_limit=1)
    assert len(gathered['locks']['expired']) == 1 and gathered['locks']['expired_total'] == 5


def test_findings_read_by_primary_key_or_from_the_table_agree(korrigo, monkeypatch):
    """korrigo_facts hands each finding the ids of its copies, or (above MAX_IDS_BY_KEY) lets it read its status
    from the whole table: both give the same facts, on every creation path and scenario seeded together."""
    import psycopg2
    import psycopg2.extras
    from conftest import dsn_for
    from ansible_collections.korrigo.ops.plugins.module_utils.version import detect_version
    from ansible_collections.korrigo.ops.plugins.module_utils import facts as korrigo_facts

    for scenario in ('baseline', 'locks', 'finalization', 'import_stuck', 'audit'):
        korrigo.seed(scenario)
    params = dict(stuck_after_minutes=5, lock_age_minutes=60, stale_after_minutes=30, list_limit=200)
    conn = psycopg2.connect(dsn_for(korrigo.name))
    try:
        conn.set_session(readonly=True, isolation_level='REPEATABLE READ')
        cursor = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        rules = detect_version(cursor)
        subsets = list(korrigo_facts.SUBSETS)
        by_key = korrigo_facts.gather(cursor, rules, subsets, params)
        assert all(ids is not None for ids in korrigo_facts.scan_copies(cursor, subsets, {}).values())
        monkeypatch.setattr(korrigo_facts, 'MAX_IDS_BY_KEY', 0)
        assert all(ids is None for ids in korrigo_facts.scan_copies(cursor, subsets, {}).values())
        from_table = korrigo_facts.gather(cursor, rules, subsets, params)
    finally:
        conn.close()
    assert by_key == from_table
    assert by_key['stuck_imports']['stuck_total'] > 0 and by_key['finalizations']['failed_total'] > 0
    assert by_key['locks']['locked_without_valid_lock'] > 0


def test_reads_beside_fall_back_to_one_connection_when_a_second_is_refused(korrigo):
    """A role allowed one connection (a server at max_connections): the reads korrigo_facts makes beside the others
    (finalizations, locks, the audit check) are read on its one connection instead, with the same answer."""
    from psycopg2 import sql

    role = 'korrigo_ops_one_connection_%s' % korrigo.version.replace('8f16b75', 'old')
    for scenario in ('locks', 'finalization', 'import_stuck', 'audit'):
        korrigo.seed(scenario)
    with korrigo.conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchone():
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'one-connection' CONNECTION LIMIT 1")
                        .format(sql.Identifier(role)))
        cur.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    subsets = ['copies', 'stuck_imports', 'finalizations', 'locks', 'audit']
    two = korrigo.run('korrigo_facts', gather_subset=subsets)
    one = korrigo.run('korrigo_facts', gather_subset=subsets, login_user=role, login_password='one-connection')
    assert one.get('failed') is not True, one
    assert without_clock(one['ansible_facts']) == without_clock(two['ansible_facts'])
    assert 'msg' not in one['ansible_facts']['korrigo']['audit']


def without_clock(value):
    """Facts without what moves with the clock between two reads (ages, time since expiry)."""
    if isinstance(value, dict):
        return dict((k, without_clock(v)) for k, v in value.items()
                    if not k.endswith('_seconds') and k != 'checked_at_epoch')
    if isinstance(value, list):
        return [without_clock(v) for v in value]
    return value
