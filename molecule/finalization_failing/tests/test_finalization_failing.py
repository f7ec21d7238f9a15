# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After retry_failed_finalizations.yml: every repairable copy is GRADED by Korrigo's own finalize, with a
final PDF carrying its annotations (built from its page images: most copies are batch uploads with an empty
pdf_source); the copies whose page images are missing or unreadable, the merged copy and the GRADED control are
untouched; the READY copy's out-of-bounds box is clamped before its first finalize.

Fixtures (db, seeded, snapshots, uuid_array) come from molecule/shared/korrigo_molecule.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

import pytest

ACTOR = 'korrigo-ops'
REPAIRABLE = ('out_of_bounds', 'same_actor', 'worker_died', 'unknown', 'failed_once', 'border')


@pytest.fixture(name='finalization')
def finalization_fixture(seeded):
    return seeded['finalization']


@pytest.fixture(name='repairable')
def repairable_fixture(finalization):
    return [copy_id for group in REPAIRABLE for copy_id in finalization['%s_copy_ids' % group]]


def test_every_repairable_copy_is_graded_by_korrigo_finalize(db, repairable, uuid_array):
    rows = db.rows("SELECT status, graded_at IS NOT NULL AS graded, grading_error_message, final_pdf "
                   "FROM exams_copy WHERE id = ANY(%s)" % uuid_array(repairable))
    assert len(rows) == len(repairable) == 7
    assert all(r['status'] == 'GRADED' and r['graded'] and r['grading_error_message'] is None for r in rows), rows
    assert all(r['final_pdf'].startswith('copies/final/') for r in rows)


def test_final_pdfs_carry_the_annotations(host, db, repairable, uuid_array):
    # The inventory's korrigo_media_root is a template testinfra does not render: the stack's media directory.
    media = os.path.join(os.environ['MOLECULE_PROJECT_DIRECTORY'], 'tests', 'stack', '.run', 'media')
    rows = db.rows("SELECT c.final_pdf, (SELECT count(*) FROM grading_annotation a WHERE a.copy_id = c.id) AS n "
                   "FROM exams_copy c WHERE c.id = ANY(%s)" % uuid_array(repairable))
    for row in rows:
        final = host.file('%s/%s' % (media, row['final_pdf']))
        assert final.exists and final.size > 0
        text = host.run('%s -c %s %s', sys.executable,
                        'import sys, pymupdf; d = pymupdf.open(sys.argv[1]); print("".join(p.get_text() for p in d))',
                        '%s/%s' % (media, row['final_pdf']))
        assert text.rc == 0, text.stderr
        assert text.stdout.count('Erreur de calcul') + text.stdout.count('Bonne d') == row['n'], text.stdout


def test_no_annotation_was_lost(db, finalization, uuid_array):
    ids = uuid_array(finalization['out_of_bounds_copy_ids'] + finalization['border_copy_ids'])
    assert db.scalar("SELECT count(*) FROM grading_annotation WHERE copy_id = ANY(%s)" % ids) == 6
    assert db.scalar("SELECT count(*) FROM grading_annotation WHERE copy_id = ANY(%s) "
                     "AND (x + w > 1 OR y + h > 1 OR 'NaN'::float8 IN (x, y, w, h))" % ids) == 0
    # The border control needed no fix: the 3 out-of-bounds boxes of failed copies and, as prevention, the one of
    # the READY copy were clamped.
    assert db.scalar("SELECT count(*) FROM grading_gradingevent WHERE action = 'UPDATE_ANN'") == 4
    ready = uuid_array(finalization['ready_oob_copy_ids'])
    assert db.scalar("SELECT count(*) FROM grading_annotation WHERE copy_id = ANY(%s) AND x + w > 1" % ready) == 0
    assert db.scalar("SELECT count(*) FROM exams_copy WHERE id = ANY(%s) AND status = 'READY'" % ready) == 1


def test_repaired_copies_are_mostly_batch_uploads(db, repairable, uuid_array):
    assert db.scalar("SELECT count(*) FROM exams_copy WHERE id = ANY(%s) AND pdf_source = ''"
                     % uuid_array(repairable)) == len(repairable) - 1


def test_refinalized_as_the_remediation_user(db, seeded, finalization, uuid_array):
    ops = seeded.users[ACTOR]
    same_actor = uuid_array(finalization['same_actor_copy_ids'])
    assert db.scalar("SELECT count(*) FROM grading_gradingevent WHERE copy_id = ANY(%s) AND action = 'FINALIZE' "
                     "AND actor_id = %d AND metadata ->> 'success' IS NULL" % (same_actor, ops)) == 1


def test_copies_needing_a_human_and_controls_are_untouched(db, snapshots):
    untouched = snapshots['untouched_copies']
    assert len(untouched['rows']) == 4
    assert db.rows(untouched['query']) == untouched['rows']
