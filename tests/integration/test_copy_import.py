"""copy_import: stuck copies get exactly what Korrigo's import writes, bad ones are flagged, nothing is lost."""
import os
import shutil

import pytest

from korrigo_stack import scenarios_import as pdfs
from korrigo_stack import services

FLAG = 'korrigo_ops.copy_import.flag_reupload'


@pytest.fixture(name='stuck')
def stuck_fixture(korrigo):
    ids = korrigo.seed('import_stuck')
    yield korrigo, ids
    for copy_id in ids['stuck_copy_ids']:
        shutil.rmtree(os.path.join(ids['media_root'], 'copies', 'pages', copy_id), ignore_errors=True)


def page_dirs(ids):
    return dict((c, os.path.isdir(os.path.join(ids['media_root'], 'copies', 'pages', c))) for c in ids['stuck_copy_ids'])


def run(korrigo, ids, check_mode=False, **args):
    args.setdefault('stuck', True)
    return korrigo.run('copy_import', check_mode=check_mode, diff=True, media_root=ids['media_root'], **args)


def test_check_mode_changes_nothing(stuck):
    korrigo, ids = stuck
    before = korrigo.checksums()
    result = run(korrigo, ids, check_mode=True)
    assert result['changed'] is True and result['count'] == len(ids['stuck_copy_ids'])
    assert result['imported'] == len(ids['importable_copy_ids']), result
    assert korrigo.checksums() == before
    assert not any(page_dirs(ids).values())
    assert not [n for n in os.listdir(os.path.join(ids['media_root'], 'copies', 'pages')) if n.startswith('.korrigo-ops')]
    assert set(result['diff']['before']['copies']) == set(ids['stuck_copy_ids'])


def test_stuck_copies_get_what_korrigos_import_writes(stuck):
    korrigo, ids = stuck
    result = run(korrigo, ids)
    assert (result['changed'], result['imported'], result['flagged_now']) == \
        (True, len(ids['importable_copy_ids']), len(ids['flagged_copy_ids'])), result
    rows = korrigo.query(
        "SELECT c.id::text AS copy_id, c.anonymous_id, c.status, b.start_page, b.end_page, b.pages_images, b.exam_id::text"
        "  FROM exams_copy c JOIN exams_copy_booklets cb ON cb.copy_id = c.id JOIN exams_booklet b ON b.id = cb.booklet_id"
        " WHERE c.id = ANY(%s::uuid[]) ORDER BY c.id", (ids['valid_copy_ids'],))
    assert [r['copy_id'] for r in rows] == sorted(ids['valid_copy_ids'])
    for row in rows:
        expected = services.page_paths(row['copy_id'], 3)
        assert (row['anonymous_id'], row['status'], row['start_page'], row['end_page'], row['pages_images'],
                row['exam_id']) == ('IMPORT-' + row['copy_id'][:8].upper(), 'STAGING', 1, 3, expected, ids['exam_id'])
        for rel in expected:
            assert os.path.getsize(os.path.join(ids['media_root'], rel)) > 1000
    events = korrigo.query("SELECT e.copy_id::text, e.metadata FROM grading_gradingevent e JOIN auth_user u ON u.id = e.actor_id"
                           " WHERE e.action = 'IMPORT' AND u.username = 'korrigo-ops' ORDER BY 1")
    assert [e['copy_id'] for e in events] == sorted(ids['importable_copy_ids'])
    pages = dict((c, 3) for c in ids['valid_copy_ids'])
    pages.update((c, 2) for c in ids.get('individual_copy_ids', []))
    assert all(sorted(e['metadata']) == ['filename', 'pages'] and e['metadata']['pages'] == pages[e['copy_id']]
               for e in events)
    flags = korrigo.query("SELECT resource_id, metadata ->> 'verdict' AS verdict FROM core_auditlog WHERE action = %s"
                          " ORDER BY 1", (FLAG,))
    expected_flags = sorted([(c, 'corrupted') for c in ids['corrupted_copy_ids']]
                            + [(c, 'encrypted') for c in ids['encrypted_copy_ids']]
                            + [(c, 'missing') for c in ids['missing_copy_ids']]
                            + [(c, 'corrupted') for c in ids.get('individual_corrupted_copy_ids', [])])
    assert [(f['resource_id'], f['verdict']) for f in flags] == sorted(expected_flags)
    again = run(korrigo, ids)
    assert again['changed'] is False and again['count'] == 0 and len(again['flagged']) == len(ids['flagged_copy_ids'])


def test_pages_are_the_ones_the_worker_renders(stuck, tmp_path):
    korrigo, ids = stuck
    run(korrigo, ids, copy_ids=ids['valid_copy_ids'][:1], stuck=False)
    copy_id = ids['valid_copy_ids'][0]
    images = services.rasterize(os.path.join(ids['media_root'], ids['files'][copy_id]['path']), str(tmp_path), copy_id)
    for rel in images:
        with open(os.path.join(ids['media_root'], rel), 'rb') as mine, open(os.path.join(str(tmp_path), rel), 'rb') as worker:
            assert mine.read() == worker.read()


def test_the_copy_awaiting_validation_is_not_touched(stuck):
    korrigo, ids = stuck
    before = korrigo.checksums()
    result = run(korrigo, ids, stuck=False, copy_ids=ids['awaiting_copy_ids'])
    assert result['changed'] is False and result['skipped'][0]['reason'] == 'has pages (awaiting validation)'
    assert korrigo.checksums() == before


def test_unknown_copy_id_fails_and_changes_nothing(stuck):
    korrigo, ids = stuck
    before = korrigo.checksums()
    unknown = '00000000-0000-4000-8000-000000000001'
    result = run(korrigo, ids, stuck=False, copy_ids=[ids['valid_copy_ids'][0], unknown])
    assert result['failed'] and unknown in result['msg'] and 'nothing was changed' in result['msg']
    assert korrigo.checksums() == before and not any(page_dirs(ids).values())


def test_malformed_copy_id_and_empty_selector_are_refused(stuck):
    korrigo, ids = stuck
    assert 'malformed copy id' in run(korrigo, ids, stuck=False, copy_ids=['nope'])['msg']
    assert 'empty selector' in run(korrigo, ids, stuck=False)['msg']


def test_path_traversal_in_pdf_source_is_refused_and_flagged(stuck):
    korrigo, ids = stuck
    victim = ids['valid_copy_ids'][0]
    korrigo.query("UPDATE exams_copy SET pdf_source = '../../../../../etc/passwd' WHERE id = %s RETURNING id", (victim,))
    result = run(korrigo, ids, stuck=False, copy_ids=[victim])
    assert result['changed'] is True and result['actions'][0]['kind'] == 'flag_reupload'
    assert result['flagged'][0]['verdict'] == 'refused' and 'outside the media root' in result['flagged'][0]['detail']
    assert not page_dirs(ids)[victim]


def test_max_changes_writes_nothing(stuck):
    korrigo, ids = stuck
    before = korrigo.checksums()
    result = run(korrigo, ids, max_changes=2)
    assert result['failed'] and 'max_changes=2' in result['msg']
    assert korrigo.checksums() == before and not any(page_dirs(ids).values())


def test_a_pdf_that_hangs_is_killed_and_flagged_timeout(stuck):
    korrigo, ids = stuck
    victim = ids['valid_copy_ids'][0]
    path = os.path.join(ids['media_root'], ids['files'][victim]['path'])
    with open(path, 'wb') as out:
        out.write(pdfs.heavy_pdf())
    result = run(korrigo, ids, stuck=False, copy_ids=[victim], timeout=2)
    assert result['flagged'][0]['verdict'] == 'timeout', result
    assert os.path.getsize(path) > 0 and not page_dirs(ids)[victim]


def test_database_down_is_a_clear_failure(stuck):
    korrigo, ids = stuck
    result = korrigo.run('copy_import', media_root=ids['media_root'], stuck=True,
                         **{'login_port': 1})
    assert result['failed'] and 'unreachable' in result['msg']


def test_individual_uploads_are_rasterized_from_their_own_pdf_and_batch_copies_untouched(stuck):
    korrigo, ids = stuck
    batch_before = korrigo.query(
        "SELECT c.*, b.pages_images FROM exams_copy c JOIN exams_copy_booklets cb ON cb.copy_id = c.id"
        " JOIN exams_booklet b ON b.id = cb.booklet_id WHERE c.id = ANY(%s::uuid[]) ORDER BY c.id", (ids['batch_copy_ids'],))
    assert batch_before and all(r['pdf_source'] == '' for r in batch_before)
    if korrigo.version != 'head':
        assert 'individual_copy_ids' not in ids  # INDIVIDUAL_A4 does not exist on 8f16b75
        run(korrigo, ids)
    else:
        facts = korrigo.run('korrigo_facts', gather_subset=['stuck_imports'])['ansible_facts']['korrigo']['stuck_imports']
        listed = dict((c['copy_id'], c) for c in facts['stuck'])
        for copy_id in ids['individual_copy_ids']:
            assert listed[copy_id]['creation_path'] == 'individual'
            assert 40 * 60 <= listed[copy_id]['age_seconds'] < 50 * 60  # from exams_exampdf.uploaded_at
        assert ids['individual_fresh_copy_ids'][0] not in listed  # uploaded a minute ago: not stuck yet
        assert facts['stuck_by_creation_path'] == {'import': 5, 'individual': 3}
        run(korrigo, ids)
        rows = korrigo.query(
            "SELECT c.id::text AS copy_id, c.anonymous_id, c.status, c.pdf_source, b.start_page, b.end_page,"
            " b.pages_images FROM exams_copy c JOIN exams_copy_booklets cb ON cb.copy_id = c.id"
            " JOIN exams_booklet b ON b.id = cb.booklet_id WHERE c.id = ANY(%s::uuid[]) ORDER BY c.id",
            (ids['individual_copy_ids'],))
        assert [r['copy_id'] for r in rows] == sorted(ids['individual_copy_ids'])
        for row in rows:
            # Same copy, same anonymous id, same PDF; the booklet and pages import_pdf would have made.
            assert row['status'] == 'STAGING' and row['pdf_source'].startswith('exams/individual/')
            assert (row['start_page'], row['end_page'], row['pages_images']) == \
                (1, 2, services.page_paths(row['copy_id'], 2))
            for rel in row['pages_images']:
                assert os.path.getsize(os.path.join(ids['media_root'], rel)) > 1000
        events = korrigo.query("SELECT copy_id::text, metadata FROM grading_gradingevent WHERE action = 'IMPORT'"
                               " AND copy_id = ANY(%s::uuid[]) ORDER BY 1", (ids['individual_copy_ids'],))
        assert [e['metadata']['filename'] for e in events] == \
            [os.path.basename(r['pdf_source']) for r in rows]
    batch_after = korrigo.query(
        "SELECT c.*, b.pages_images FROM exams_copy c JOIN exams_copy_booklets cb ON cb.copy_id = c.id"
        " JOIN exams_booklet b ON b.id = cb.booklet_id WHERE c.id = ANY(%s::uuid[]) ORDER BY c.id", (ids['batch_copy_ids'],))
    assert batch_after == batch_before
