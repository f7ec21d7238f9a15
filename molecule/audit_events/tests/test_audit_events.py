# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After audit_trail_check.yml with notes: one core_auditlog note per gap, no grading event touched, JSON report.

Fixtures (db, seeded, snapshots, uuid_array) come from molecule/shared/korrigo_molecule.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

AUDIT_ACTION = 'korrigo_ops.audit_trail.gap'


def notes(db):
    return db.rows("SELECT a.resource_id, a.resource_type, a.metadata->>'gap' AS gap, u.username "
                   "FROM core_auditlog a LEFT JOIN auth_user u ON u.id = a.user_id WHERE a.action = '%s'"
                   % AUDIT_ACTION)


def test_one_note_per_expected_gap(db, seeded):
    found = {}
    for row in notes(db):
        assert row['resource_type'] == 'Copy' and row['username'] == 'korrigo-ops', row
        found.setdefault(row['resource_id'], []).append(row['gap'])
    expected = seeded['audit']['expected_gaps']
    assert dict((k, sorted(v)) for k, v in found.items()) == dict((k, sorted(v)) for k, v in expected.items())


def test_clean_controls_and_baseline_have_no_note(db, seeded):
    noted = set(row['resource_id'] for row in notes(db))
    assert not noted & set(seeded['audit']['clean_copy_ids'])
    baseline = [c for ids in seeded['baseline']['copy_ids_by_status'].values() for c in ids]
    assert not noted & set(baseline)


def test_copies_created_without_import_pdf_have_no_note(db, seeded):
    """Batch and individual uploads and merges write no IMPORT (HEAD batch uploads no VALIDATE either): not gaps."""
    noted = set(row['resource_id'] for row in notes(db))
    for group in ('ready', 'graded', 'individual', 'merged'):
        assert not noted & set(seeded['audit']['%s_copy_ids' % group]), group
    rows = db.rows("SELECT a.resource_id, a.metadata->>'creation_path' AS path, a.metadata->>'rule' AS rule "
                   "FROM core_auditlog a WHERE a.action = '%s' AND a.metadata->>'gap' = 'missing_import'"
                   % AUDIT_ACTION)
    assert [(r['resource_id'], r['path']) for r in rows] == [(seeded['audit']['noimport_copy_ids'][0], 'import')]
    assert rows[0]['rule'] == 'import_pdf copies have an IMPORT event'


def test_grading_events_are_never_invented_or_changed(db, snapshots):
    before = snapshots['grading_events']
    assert db.rows(before['query']) == before['rows']


def test_json_report_lists_every_gap(seeded):
    path = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], 'reports', 'audit_events-korrigo-local.json')
    with open(path) as handle:
        report = json.load(handle)
    assert report['scenario'] == 'audit_events' and report['severity'] == 'P2'
    assert report['details']['gap_counts']['missing_import'] == 1
    assert all(gap['noted'] for gap in report['details']['gaps'])
    assert all(gap['rule'] and gap['creation_path'] for gap in report['details']['gaps'])
    # baseline + audit: every path counted, at least what the audit scenario seeded of each
    by_path = report['details']['copies_by_creation_path']
    seeded_paths = seeded['audit']['copies_by_creation_path']
    assert set(by_path) == set(seeded_paths) == {'batch', 'individual', 'import', 'merge'}
    assert all(by_path[path] >= n for path, n in seeded_paths.items())
    assert by_path['batch'] > by_path['import']
    assert any(line.startswith('copies by creation path: batch: ') for line in report['found'])
