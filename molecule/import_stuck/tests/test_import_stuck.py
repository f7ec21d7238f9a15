# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After recover_stuck_imports.yml: the worker answers, queued uploads are imported, stuck copies with a good
PDF have exactly what Korrigo's import writes, bad ones are flagged and intact, the waiting copy is untouched.

Fixtures (db, seeded, snapshots, uuid_array) come from molecule/shared/korrigo_molecule.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

ACTOR = 'korrigo-ops'
FLAG_ACTION = 'korrigo_ops.copy_import.flag_reupload'


@pytest.fixture(name='incident')
def incident_fixture(seeded):
    return seeded['import_stuck']


@pytest.fixture(name='queued', scope='session')
def queued_fixture():
    with open(os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'queued.json')) as handle:
        return json.load(handle)['queued']


def pages_of(db, ids):
    return db.rows("SELECT c.id::text AS copy_id, c.anonymous_id, c.status, b.start_page, b.end_page, b.pages_images "
                   "  FROM exams_copy c JOIN exams_copy_booklets cb ON cb.copy_id = c.id "
                   "  JOIN exams_booklet b ON b.id = cb.booklet_id WHERE c.id = ANY(%s) ORDER BY c.id" % ids)


def test_the_worker_runs_again(host):
    out = host.check_output("docker ps -q --filter label=com.docker.compose.project=korrigo "
                            "--filter label=com.docker.compose.service=celery --filter status=running")
    assert out.strip(), 'the celery container is not running'


def test_queued_uploads_were_imported_by_the_worker(db, incident, queued, host):
    names = [os.path.basename(item['file']) for item in queued]
    rows = db.rows("SELECT c.id::text AS copy_id, c.status, e.metadata, b.pages_images FROM grading_gradingevent e "
                   "  JOIN exams_copy c ON c.id = e.copy_id JOIN exams_copy_booklets cb ON cb.copy_id = c.id "
                   "  JOIN exams_booklet b ON b.id = cb.booklet_id "
                   " WHERE e.action = 'IMPORT' AND c.exam_id = '%s' AND e.metadata ->> 'filename' IN ('%s')"
                   % (incident['exam_id'], "', '".join(names)))
    assert sorted(r['metadata']['filename'] for r in rows) == sorted(names)
    for row in rows:
        assert row['status'] == 'STAGING' and row['metadata']['pages'] == 2
        assert row['pages_images'] == ['copies/pages/%s/p%03d.png' % (row['copy_id'], k) for k in range(2)]
        for rel in row['pages_images']:
            assert host.file(os.path.join(incident['media_root'], rel)).is_file
    for item in queued:  # Korrigo's task deletes the temporary upload after a successful import
        assert not host.file(os.path.join(incident['media_root'], item['file'])).exists


def test_valid_stuck_copies_have_their_pages(db, incident, uuid_array, host):
    rows = pages_of(db, uuid_array(incident['valid_copy_ids']))
    assert sorted(r['copy_id'] for r in rows) == sorted(incident['valid_copy_ids'])
    for row in rows:
        assert row['anonymous_id'] == 'IMPORT-' + row['copy_id'][:8].upper()
        assert row['status'] == 'STAGING'
        assert (row['start_page'], row['end_page']) == (1, 3)
        assert row['pages_images'] == ['copies/pages/%s/p%03d.png' % (row['copy_id'], k) for k in range(3)]
        for rel in row['pages_images']:
            png = host.file(os.path.join(incident['media_root'], rel))
            assert png.is_file and png.size > 1000
            assert png.content[:8] == b'\x89PNG\r\n\x1a\n'


def test_one_booklet_per_valid_copy(db, incident, uuid_array):
    assert db.scalar('SELECT count(*) FROM exams_copy_booklets WHERE copy_id = ANY(%s)'
                     % uuid_array(incident['valid_copy_ids'])) == len(incident['valid_copy_ids'])


def test_one_import_event_by_korrigo_ops_per_valid_copy(db, incident, uuid_array):
    rows = db.rows("SELECT e.copy_id::text AS copy_id, e.metadata FROM grading_gradingevent e "
                   "  JOIN auth_user u ON u.id = e.actor_id "
                   " WHERE e.action = 'IMPORT' AND u.username = '%s'" % ACTOR)
    assert sorted(r['copy_id'] for r in rows) == sorted(incident['importable_copy_ids'])
    pages = dict((c, 3) for c in incident['valid_copy_ids'])
    pages.update((c, 2) for c in incident.get('individual_copy_ids', []))
    for row in rows:
        assert row['metadata'] == {'filename': row['metadata']['filename'], 'pages': pages[row['copy_id']]}
        assert row['metadata']['filename'].endswith('.pdf')


def test_individual_uploads_are_rasterized_from_their_own_pdf(db, incident, uuid_array):
    ids = incident.get('individual_copy_ids', [])
    rows = pages_of(db, uuid_array(ids)) if ids else []
    assert sorted(r['copy_id'] for r in rows) == sorted(ids)
    for row in rows:
        assert row['status'] == 'STAGING' and not row['anonymous_id'].startswith('IMPORT-')
        assert row['pages_images'] == ['copies/pages/%s/p%03d.png' % (row['copy_id'], k) for k in range(2)]


def test_batch_upload_copies_are_untouched(db, snapshots):
    before = snapshots['batch_copies']
    assert len(before['rows']) == 4 and all(r['pdf_source'] == '' for r in before['rows'])
    assert db.rows(before['query']) == before['rows']


@pytest.mark.parametrize('group,verdict', [('corrupted', 'corrupted'), ('encrypted', 'encrypted'),
                                           ('missing', 'missing')])
def test_bad_copies_are_flagged_once_and_left_as_they_were(db, incident, uuid_array, group, verdict):
    ids = incident['%s_copy_ids' % group]
    rows = db.rows("SELECT a.resource_id, a.metadata ->> 'verdict' AS verdict, u.username FROM core_auditlog a "
                   "  JOIN auth_user u ON u.id = a.user_id WHERE a.action = '%s' AND a.resource_id = ANY((%s)::text[])"
                   % (FLAG_ACTION, uuid_array(ids)))
    assert sorted(r['resource_id'] for r in rows) == sorted(ids)  # once: idempotence wrote no second row
    assert all(r['verdict'] == verdict and r['username'] == ACTOR for r in rows), rows
    copies = db.rows("SELECT status, (SELECT count(*) FROM exams_copy_booklets cb WHERE cb.copy_id = c.id) AS booklets "
                     "FROM exams_copy c WHERE c.id = ANY(%s)" % uuid_array(ids))
    assert copies == [{'status': 'STAGING', 'booklets': 0}] * len(ids)
    assert db.scalar("SELECT count(*) FROM grading_gradingevent e JOIN auth_user u ON u.id = e.actor_id "
                     "WHERE u.username = '%s' AND e.copy_id = ANY(%s)" % (ACTOR, uuid_array(ids))) == 0


def test_bad_pdfs_are_intact(incident, host):
    bad = set(incident['corrupted_copy_ids'] + incident['encrypted_copy_ids'])
    for copy_id in bad:
        seeded = incident['files'][copy_id]
        assert host.file(os.path.join(incident['media_root'], seeded['path'])).sha256sum == seeded['sha256']
        assert not host.file(os.path.join(incident['media_root'], 'copies', 'pages', copy_id)).exists


def test_the_copy_awaiting_validation_is_untouched(db, snapshots, incident, host):
    before = snapshots['awaiting_copy']
    assert [r['copy_id'] for r in before['rows']] == incident['awaiting_copy_ids']
    assert db.rows(before['query']) == before['rows']
    seeded = incident['files'][incident['awaiting_copy_ids'][0]]
    assert host.file(os.path.join(incident['media_root'], seeded['path'])).sha256sum == seeded['sha256']


def test_old_temporary_uploads_are_removed_fresh_ones_kept(incident, host):
    for rel in incident['old_temp_uploads']:
        assert not host.file(os.path.join(incident['media_root'], rel)).exists
    for rel in incident['fresh_temp_uploads']:
        assert host.file(os.path.join(incident['media_root'], rel)).is_file


def test_orphaned_page_directories_are_reported_not_removed(incident, host):
    for rel in incident['orphaned_page_dirs']:
        assert host.file(os.path.join(incident['media_root'], rel)).is_directory


def test_no_stuck_copy_is_left_but_the_flagged_ones(db, incident, uuid_array):
    # The individual upload of a minute ago is not stuck yet (import_stuck_stuck_after_minutes).
    bad = incident['flagged_copy_ids'] + incident.get('individual_fresh_copy_ids', [])
    stuck = db.rows("SELECT c.id::text AS copy_id FROM exams_copy c WHERE c.status = 'STAGING' AND NOT EXISTS "
                    "(SELECT 1 FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id "
                    " WHERE cb.copy_id = c.id AND jsonb_array_length(b.pages_images) > 0)")
    assert sorted(r['copy_id'] for r in stuck) == sorted(bad)
