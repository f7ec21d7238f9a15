"""Scenario 2 end to end on data shaped as Korrigo makes it: batch-upload copies (empty pdf_source, no IMPORT
event) are repaired from their page images; missing or unreadable page images need a human, named with the files.

Runs playbooks/retry_failed_finalizations.yml against the stack's HEAD database, which the stack's worker serves."""
import json
import os
import subprocess

import pytest

from conftest import ROOT


def playbook(tmp_path, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    command = ['ansible-playbook', os.path.join(ROOT, 'playbooks', 'retry_failed_finalizations.yml'),
               '-i', os.path.join(ROOT, 'inventories', 'local'),
               '-e', 'korrigo_report_dir=%s' % tmp_path] + list(extra)
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    with open(str(tmp_path / 'finalization_failing-korrigo-local.json')) as handle:
        return json.load(handle), proc.stdout


@pytest.fixture(name='head_db')
def head_db_fixture(stack_head_db):
    return stack_head_db


def rows(db, statement, params=None):
    return db.query(statement, params)


def test_batch_copies_are_repaired_from_their_page_images(head_db, tmp_path):
    seeded = head_db.seed('finalization')
    failing = [c for g in ('out_of_bounds', 'missing_pages', 'unreadable_pages', 'worker_died', 'unknown',
                           'failed_once', 'border') for c in seeded['%s_copy_ids' % g]]
    shapes = rows(head_db, "SELECT pdf_source, (SELECT count(*) FROM grading_gradingevent e WHERE e.copy_id = c.id"
                           " AND e.action = 'IMPORT') AS imports FROM exams_copy c WHERE c.id = ANY(%s::uuid[])",
                  (failing,))
    assert shapes and all(r['pdf_source'] == '' and r['imports'] == 0 for r in shapes)

    report, _out = playbook(tmp_path)
    status = dict((r['id'], r['status']) for r in rows(
        head_db, "SELECT id::text, status FROM exams_copy WHERE exam_id = %s", (seeded['exam_id'],)))
    repairable = [c for g in ('out_of_bounds', 'same_actor', 'worker_died', 'unknown', 'failed_once', 'border')
                  for c in seeded['%s_copy_ids' % g]]
    assert [status[c] for c in repairable] == ['GRADED'] * len(repairable)
    for group in ('missing_pages', 'unreadable_pages'):
        copy_id = seeded['%s_copy_ids' % group][0]
        assert status[copy_id] == 'GRADING_FAILED'
    # Needs a human: the copy and the files at fault; never "outside the media root" for an empty pdf_source.
    needs = ' | '.join(report['needs_human'])
    missing = seeded['page_images'][seeded['missing_pages_copy_ids'][0]]
    unreadable = seeded['page_images'][seeded['unreadable_pages_copy_ids'][0]][0]
    assert missing[0] in needs and 'missing from the media root' in needs
    assert unreadable in needs and 'do not open' in needs
    assert 'outside the media root' not in needs
    # Prevention: the READY copy's out-of-bounds box is clamped, its content kept; the merged copy untouched.
    boxes = rows(head_db, "SELECT x, w, content FROM grading_annotation WHERE copy_id = %s ORDER BY page_index",
                 (seeded['ready_oob_copy_ids'][0],))
    assert all(b['x'] + b['w'] <= 1 for b in boxes) and [b['content'] for b in boxes][0] == 'Bonne démarche'
    assert status[seeded['ready_oob_copy_ids'][0]] == 'READY'
    assert status[seeded['merged_copy_ids'][0]] == 'READY'
    # Each final PDF has the copy's pages (two page images) plus the summary page.
    final = rows(head_db, "SELECT final_pdf FROM exams_copy WHERE id = %s", (seeded['unknown_copy_ids'][0],))[0]
    from korrigo_stack import common
    doc = common.pymupdf().open(os.path.join(seeded['media_root'], final['final_pdf']))
    assert doc.page_count == 3

    again, _out = playbook(tmp_path)
    assert again['done'] == []
