"""copy_dossier: one copy of every scenario and every creation path, on both schema versions. Its verdicts equal what
the remediations then do (same rules: module_utils/copy_rules, creation, audit_rules); bad input is refused."""
DOSSIER = 'copy_dossier'


def dossier(korrigo, media, *copies, **args):
    result = korrigo.run(DOSSIER, copies=list(copies), media_root=media, **args)
    assert result.get('failed') is not True, result
    return result


def verdicts(result, copy_id):
    for entry in result['dossiers']:
        if entry['copy']['copy_id'] == copy_id:
            return entry['verdicts']
    raise AssertionError('no dossier for %s: %r' % (copy_id, result))


def test_finalization_verdicts_equal_what_the_remediation_does(korrigo):
    seeded = korrigo.seed('finalization')
    media = seeded['media_root']
    groups = ('out_of_bounds', 'missing_pages', 'unreadable_pages', 'worker_died', 'graded', 'merged', 'same_actor')
    ask = {g: seeded['%s_copy_ids' % g][0] for g in groups}
    result = dossier(korrigo, media, *ask.values())
    assert [d['copy']['copy_id'] for d in result['dossiers']] == list(ask.values())  # in the order asked
    got = dict((g, verdicts(result, c)['finalization']['verdict']) for g, c in ask.items())
    assert got == {'out_of_bounds': 'repairable', 'missing_pages': 'needs_human', 'unreadable_pages': 'needs_human',
                   'worker_died': 'repairable', 'graded': 'graded', 'merged': 'not_failing',
                   'same_actor': 'repairable'}
    missing = verdicts(result, ask['missing_pages'])['finalization']
    assert seeded['page_images'][ask['missing_pages']][0] in missing['why']
    fixes = [f['playbook'] for f in result['dossiers'][0]['fixes']]
    assert fixes == ['korrigo.ops.retry_failed_finalizations']
    # Creation paths as seeded: batch (empty pdf_source), merge (two booklets), import.
    paths = dict((d['copy']['copy_id'], d['copy']['creation_path']) for d in result['dossiers'])
    assert paths[ask['out_of_bounds']] == 'batch' and paths[ask['merged']] == 'merge'
    assert paths[ask['same_actor']] == 'import'
    merged = [d for d in result['dossiers'] if d['copy']['copy_id'] == ask['merged']][0]
    assert len(merged['files']['booklets']) == 2 and merged['copy']['pdf_source'] == ''
    assert all(p['verdict'] == 'ok' for b in merged['files']['booklets'] for p in b['pages'])
    # The remediation's own rule (the facts the role decides from) agrees copy by copy.
    facts = korrigo.run('korrigo_facts', gather_subset=['finalizations'])['ansible_facts']['korrigo']['finalizations']
    causes = dict((c['copy_id'], c['cause']) for c in facts['copies'])
    for group in ('out_of_bounds', 'worker_died', 'missing_pages'):
        assert verdicts(result, ask[group])['finalization']['cause'] == causes[ask[group]]


def test_import_lock_and_audit_verdicts(korrigo):
    stuck = korrigo.seed('import_stuck')
    locks = korrigo.seed('locks')
    audit = korrigo.seed('audit')
    media = stuck['media_root']
    asked = [stuck['valid_copy_ids'][0], stuck['corrupted_copy_ids'][0], stuck['awaiting_copy_ids'][0],
             stuck['batch_copy_ids'][0], locks['expired_copy_ids'][0], locks['active_copy_ids'][0],
             audit['noimport_copy_ids'][0], audit['graded_copy_ids'][0]]
    if korrigo.version == 'head':
        asked += [stuck['individual_copy_ids'][0], stuck['individual_fresh_copy_ids'][0]]
    result = dossier(korrigo, media, *asked)

    def v(copy_id, key):
        return verdicts(result, copy_id)[key]['verdict']
    assert v(stuck['valid_copy_ids'][0], 'import_stuck') == 'stuck'
    assert 'rasterizes it' in verdicts(result, stuck['valid_copy_ids'][0])['import_stuck']['why']
    assert 'flags it for re-upload' in verdicts(result, stuck['corrupted_copy_ids'][0])['import_stuck']['why']
    assert v(stuck['awaiting_copy_ids'][0], 'import_stuck') == 'awaiting_validation'
    assert v(stuck['batch_copy_ids'][0], 'import_stuck') in ('not_staging', 'awaiting_validation')
    assert v(locks['expired_copy_ids'][0], 'lock') == 'expired'
    active = verdicts(result, locks['active_copy_ids'][0])['lock']
    assert active['verdict'] == 'active' and active['fix']['extra_vars']['lock_conflicts_force_copy_ids'] == \
        [locks['active_copy_ids'][0]]
    gaps = verdicts(result, audit['noimport_copy_ids'][0])['audit']
    assert gaps['verdict'] == 'gaps' and [g['kind'] for g in gaps['gaps']] == ['missing_import']
    assert v(audit['graded_copy_ids'][0], 'audit') == 'complete'  # a batch copy: no IMPORT expected
    if korrigo.version == 'head':
        individual = verdicts(result, stuck['individual_copy_ids'][0])['import_stuck']
        assert individual['verdict'] == 'stuck' and 'individual upload' in individual['why']
        assert v(stuck['individual_fresh_copy_ids'][0], 'import_stuck') == 'not_yet_stuck'
    # What the remediations then do matches: copy_import rasterizes exactly the copies called stuck with a good PDF.
    repaired = korrigo.run('copy_import', stuck=True, media_root=media)
    imported = set(a['copy_id'] for a in repaired['actions'] if a['kind'] == 'reimport')
    called = set(c for c in asked if 'rasterizes it' in verdicts(result, c)['import_stuck']['why'])
    assert called <= imported and stuck['valid_copy_ids'][0] in called
    released = korrigo.run('copylock', expired=True)
    assert locks['expired_copy_ids'][0] in [a['copy_id'] for a in released['actions']]
    assert locks['active_copy_ids'][0] not in [a['copy_id'] for a in released['actions']]
    noted = korrigo.run('audit_trail')
    assert set((g['copy_id'], g['kind']) for g in noted['gaps'] if g['copy_id'] in asked) == \
        set((c, g['kind']) for c in asked for g in verdicts(result, c)['audit'].get('gaps', []))


def test_bad_input(korrigo):
    seeded = korrigo.seed('finalization')
    media = seeded['media_root']
    before = korrigo.checksums()
    for bad in ("'; DROP TABLE exams_copy; --", 'x', '../etc', ''):
        failed = korrigo.run(DOSSIER, copies=[bad], media_root=media, login_port=1)
        # refused before connecting: the closed port would say "cannot connect" otherwise
        assert failed.get('failed') and ('malformed copy id' in failed['msg'] or 'empty selector' in failed['msg'])
    unknown = dossier(korrigo, media, '00000000-0000-4000-8000-000000000001', 'ZZZZ-999')
    assert unknown['dossiers'] == [] and unknown['unknown'] == ['00000000-0000-4000-8000-000000000001', 'ZZZZ-999']
    assert korrigo.checksums() == before
    first, second = seeded['out_of_bounds_copy_ids']
    if korrigo.version != 'head':  # 8f16b75's anonymous ids are random: give two of them a common beginning
        korrigo.query("UPDATE exams_copy SET anonymous_id = CASE id WHEN %s THEN 'AB12CD01' ELSE 'AB12CD02' END"
                      " WHERE id IN (%s, %s) RETURNING id", (first, first, second))
    anon = korrigo.scalar("SELECT anonymous_id FROM exams_copy WHERE id = %s", (first,))
    several = dossier(korrigo, media, anon[:4])  # HEAD: the exam's prefix, shared by every copy of the exam
    assert several['dossiers'] == [] and several['ambiguous'][0]['query'] == anon[:4].upper()
    assert len(several['ambiguous'][0]['matches']) > 1
    one = dossier(korrigo, media, anon.lower())  # case does not matter
    assert [d['copy']['copy_id'] for d in one['dossiers']] == [first]


def test_one_copy_costs_indexed_lookups_only(korrigo_head):
    """The plan of the dossier statement for one copy: every table is reached through an index (with sequential
    scans disabled, a Seq Scan left in the plan means no index can serve that lookup)."""
    import importlib.util
    import os

    from conftest import MODULES

    seeded = korrigo_head.seed('baseline', count=3000)
    copy_id = seeded['copy_ids_by_status']['GRADED'][0]
    spec = importlib.util.spec_from_file_location('copy_dossier', os.path.join(MODULES, 'copy_dossier.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    statement = module.dossier_statement({'individual_upload': True})
    with korrigo_head.conn.cursor() as cur:
        cur.execute('ANALYZE')
        cur.execute('SET enable_seqscan = off')
    try:
        plan = korrigo_head.query('EXPLAIN (FORMAT JSON) ' + statement, {
            'only_copy_ids': [copy_id], 'events_limit': 200, 'stuck_after': 5, 'stale_after': 30})
    finally:
        with korrigo_head.conn.cursor() as cur:
            cur.execute('RESET enable_seqscan')
    nodes = []

    def walk(node):
        nodes.append((node['Node Type'], node.get('Relation Name')))
        for child in node.get('Plans', []):
            walk(child)
    walk(plan[0]['QUERY PLAN'][0]['Plan'])
    scanned = set(table for kind, table in nodes if kind == 'Seq Scan')
    big = {'exams_copy', 'grading_gradingevent', 'grading_annotation', 'exams_copy_booklets', 'exams_booklet',
           'core_auditlog', 'grading_copylock', 'exams_exampdf', 'exams_exam'}
    assert not scanned & big, nodes
    assert ('Index Scan', 'exams_copy') in nodes or ('Index Only Scan', 'exams_copy') in nodes, nodes


def test_the_playbook_reports_in_every_format(korrigo_head, tmp_path):
    """playbooks/copy_dossier.yml by id and by anonymous id: screen, JSON, Markdown and HTML reports."""
    import json
    import os
    import subprocess

    from conftest import ROOT

    seeded = korrigo_head.seed('finalization')
    missing = seeded['missing_pages_copy_ids'][0]
    anon = korrigo_head.scalar("SELECT anonymous_id FROM exams_copy WHERE id = %s", (seeded['unknown_copy_ids'][0],))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    proc = subprocess.run(
        ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'copy_dossier.yml'), '-i',
         os.path.join(ROOT, 'inventories', 'local'), '-e', 'korrigo_db_name=%s' % korrigo_head.name,
         '-e', 'korrigo_report_dir=%s' % tmp_path, '-e', 'korrigo_media_root=%s' % seeded['media_root'],
         '-e', 'korrigo_copy=%s,%s' % (missing, anon.lower())],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    with open(str(tmp_path / 'copy_dossier-korrigo-local-latest.json')) as handle:
        report = json.load(handle)
    assert report['status'].endswith('fix(es) proposed')
    assert any(line.startswith(anon) for line in report['found'])
    assert any('korrigo.ops.retry_failed_finalizations' in line for line in report['proposed'])
    assert any('restore them from backup' in line for line in report['needs_human'])
    for ext in ('md', 'html'):
        assert os.path.getsize(str(tmp_path / ('copy_dossier-korrigo-local-latest.%s' % ext))) > 200
