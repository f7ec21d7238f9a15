import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.finalization import (
    describe_pages_problem, describe_still_running, finalization_decision, finalize_pending, with_page_verdicts,
)


def copy(copy_id, status, retries):
    return {'copy_id': copy_id, 'status': status, 'grading_retries': retries}


def test_a_copy_is_pending_until_finalize_counted_an_attempt_and_left_in_progress():
    baseline = [copy('a', 'GRADING_FAILED', 2), copy('b', 'READY', 0), copy('c', 'GRADING_FAILED', 1)]
    watched = [copy('a', 'GRADED', 3), copy('b', 'GRADING_IN_PROGRESS', 1), copy('c', 'GRADING_FAILED', 1)]
    assert [c['copy_id'] for c in finalize_pending(watched, baseline)] == ['b', 'c']


def test_a_failed_attempt_also_ends_the_wait():
    assert finalize_pending([copy('a', 'GRADING_FAILED', 4)], [copy('a', 'GRADING_FAILED', 3)]) == []


def test_page_verdicts_follow_each_copys_images_in_order_and_refuse_mismatches():
    copies = [{'copy_id': 'a', 'pages_images': ['a1.png', 'a2.png']},
              {'copy_id': 'b', 'pages_images': ['b1.png']},
              {'copy_id': 'c', 'pages_images': []},
              {'copy_id': 'd', 'pages_images': ['d1.png', 'd2.png']}]
    files = [{'path': 'a1.png', 'verdict': 'ok'}, {'path': 'a2.png', 'verdict': 'ok'},
             {'path': 'b1.png', 'verdict': 'missing', 'detail': 'no such file'},
             {'path': 'd1.png', 'verdict': 'missing'}, {'path': 'd2.png', 'verdict': 'corrupted'}]
    checked = with_page_verdicts(copies, files)
    assert [(c['copy_id'], c['pages_verdict']) for c in checked] == [
        ('a', 'ok'), ('b', 'missing_pages'), ('c', 'no_pages'), ('d', 'unreadable_pages')]
    assert checked[1]['pages_problems'] == [{'path': 'b1.png', 'verdict': 'missing', 'detail': 'no such file'}]
    with pytest.raises(AnsibleFilterError):
        with_page_verdicts(copies, files[:4])


def test_an_empty_pdf_source_is_no_reason_to_refuse():
    copies = [{'copy_id': 'a', 'pdf_source': '', 'pages_images': ['p.png']}]
    assert with_page_verdicts(copies, [{'path': 'p.png', 'verdict': 'ok'}])[0]['pages_verdict'] == 'ok'


@pytest.mark.parametrize('verdict,text', [('missing_pages', 'restore them from backup'),
                                          ('refused', 'outside the media root'),
                                          ('no_pages', 'No pages found to flatten'),
                                          ('unreadable_pages', 'do not open')])
def test_page_problems_name_the_copy_the_files_and_what_to_do(verdict, text):
    problems = [{'path': 'booklets/e/b/page_%03d.png' % k, 'verdict': 'missing'} for k in range(1, 8)]
    line = describe_pages_problem({'anonymous_id': '06A4-001', 'pages_verdict': verdict, 'pages_problems': problems})
    assert line.startswith('06A4-001: ') and text in line
    assert 'page_001.png' in line and 'page_006.png' not in line and 'and 2 more' in line


def test_decision_repairs_copies_with_good_pages_and_leaves_the_rest_to_a_human():
    checked = [
        {'copy_id': 'a', 'anonymous_id': 'A', 'cause': 'out_of_bounds_annotations', 'pages_verdict': 'ok'},
        {'copy_id': 'b', 'anonymous_id': 'B', 'cause': 'worker_died', 'pages_verdict': 'ok'},
        {'copy_id': 'c', 'anonymous_id': 'C', 'cause': 'timeout', 'pages_verdict': 'ok'},
        {'copy_id': 'd', 'anonymous_id': 'D', 'cause': 'worker_died', 'pages_verdict': 'missing_pages'},
        {'copy_id': 'e', 'anonymous_id': 'E', 'cause': 'in_progress', 'pages_verdict': 'ok'},
    ]
    decision = finalization_decision(checked)
    assert decision['out_of_bounds_copy_ids'] == ['a'] and decision['worker_died_copy_ids'] == ['b']
    assert decision['refinalize_copy_ids'] == ['a', 'b', 'c']
    assert [c['copy_id'] for c in decision['bad_pages']] == ['d']
    assert [c['copy_id'] for c in decision['still_running']] == ['e']
    assert describe_still_running(checked[4]) == 'E: finalize still running (not stale yet)'
    with pytest.raises(AnsibleFilterError):
        finalization_decision('x')
