import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.finalization import (
    describe_pdf_problem, finalize_pending, with_verdicts,
)


def copy(copy_id, status, retries):
    return {'copy_id': copy_id, 'status': status, 'grading_retries': retries}


def test_a_copy_is_pending_until_finalize_counted_an_attempt_and_left_in_progress():
    baseline = [copy('a', 'GRADING_FAILED', 2), copy('b', 'READY', 0), copy('c', 'GRADING_FAILED', 1)]
    watched = [copy('a', 'GRADED', 3), copy('b', 'GRADING_IN_PROGRESS', 1), copy('c', 'GRADING_FAILED', 1)]
    assert [c['copy_id'] for c in finalize_pending(watched, baseline)] == ['b', 'c']


def test_a_failed_attempt_also_ends_the_wait():
    assert finalize_pending([copy('a', 'GRADING_FAILED', 4)], [copy('a', 'GRADING_FAILED', 3)]) == []


def test_with_verdicts_zips_in_order_and_refuses_mismatches():
    copies = [{'copy_id': 'a', 'anonymous_id': 'IMPORT-A'}, {'copy_id': 'b', 'anonymous_id': 'IMPORT-B'}]
    files = [{'verdict': 'ok'}, {'verdict': 'missing', 'detail': 'no such file'}]
    checked = with_verdicts(copies, files)
    assert [(c['copy_id'], c['pdf_verdict']) for c in checked] == [('a', 'ok'), ('b', 'missing')]
    with pytest.raises(AnsibleFilterError):
        with_verdicts(copies, files[:1])


@pytest.mark.parametrize('verdict,text', [('missing', 'restore it from backup'), ('refused', 'outside the media root'),
                                          ('encrypted', 'source PDF is encrypted')])
def test_pdf_problems_say_what_to_do(verdict, text):
    line = describe_pdf_problem({'anonymous_id': 'IMPORT-A', 'pdf_verdict': verdict})
    assert line.startswith('IMPORT-A: ') and text in line
