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
