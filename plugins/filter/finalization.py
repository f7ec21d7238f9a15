# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in finalize_pending.yml, with_page_verdicts.yml, describe_pages_problem.yml and finalization_decision.yml
# next to this file.

from ansible.errors import AnsibleFilterError

# Whether a copy's page images are fine and whether it is repairable are decided in module_utils/copy_rules.py.
from ansible_collections.korrigo.ops.plugins.module_utils import copy_rules


def finalize_pending(watched, baseline):
    """Copies of `watched` whose finalize has not run to an end since `baseline` was taken.

    Korrigo's finalize increments grading_retries on every attempt and leaves GRADED or GRADING_FAILED, so a
    copy is done once its count is above the baseline's and it is no longer GRADING_IN_PROGRESS.
    """
    if not isinstance(watched, list) or not isinstance(baseline, list):
        raise AnsibleFilterError("finalize_pending expects two lists of watched copies (korrigo_facts watch_copy_ids)")
    retries_before = dict((copy['copy_id'], copy['grading_retries']) for copy in baseline)
    return [copy for copy in watched
            if copy['status'] == 'GRADING_IN_PROGRESS'
            or copy['grading_retries'] <= retries_before.get(copy['copy_id'], -1)]


PAGE_ADVICE = {
    'no_pages': 'no page image in its booklets (finalize fails with "No pages found to flatten") - re-import the scan',
    'missing_pages': 'page images missing from the media root - restore them from backup or re-import the scan'
                     ' (a re-finalize would leave them out of the final PDF)',
    'unreadable_pages': 'page images that do not open - restore them from backup or re-import the scan',
    'refused': 'page image paths lie outside the media root - check exams_booklet.pages_images',
}


def with_page_verdicts(copies, files):
    """Each copy with the verdict on its booklets' page images. ``files`` are pdf_check's (kind=image) results for
    every copy's ``pages_images``, concatenated in the copies' order."""
    if not isinstance(copies, list) or not isinstance(files, list):
        raise AnsibleFilterError("with_page_verdicts expects the copies and pdf_check's files for their pages_images")
    expected = sum(len(copy.get('pages_images') or []) for copy in copies)
    if expected != len(files):
        raise AnsibleFilterError("with_page_verdicts: %d page images listed but %d verdicts given" % (expected, len(files)))
    out, offset = [], 0
    for copy in copies:
        count = len(copy.get('pages_images') or [])
        verdict, problems = copy_rules.pages_verdict(copy.get('pages_images'), files[offset:offset + count])
        offset += count
        out.append(dict(copy, pages_verdict=verdict, pages_problems=problems))
    return out


def describe_pages_problem(copy):
    """One report line for a copy whose page images keep it from being finalized: which copy, which files."""
    verdict = copy.get('pages_verdict', 'unknown')
    advice = PAGE_ADVICE.get(verdict, 'page images are %s - check them' % verdict)
    paths = [p['path'] for p in copy.get('pages_problems') or [] if p.get('path')]
    shown = ', '.join(paths[:5]) + (' and %d more' % (len(paths) - 5) if len(paths) > 5 else '')
    return '%s: %s%s' % (copy.get('anonymous_id') or copy.get('copy_id'), advice, ' (%s)' % shown if shown else '')


def finalization_decision(checked):
    """What the finalization_failing role does with each copy (``checked``: with_page_verdicts' result).

    A repairable copy (copy_rules.is_repairable: its page images are all fine and no finalize may still be running
    on it): out-of-bounds annotations are brought back inside the page, a copy whose worker died is made
    finalizable again, and every repairable copy is re-finalized. The others need a human.
    """
    if not isinstance(checked, list):
        raise AnsibleFilterError("finalization_decision expects the copies with their page verdicts (with_page_verdicts)")
    fixable = [c for c in checked if copy_rules.is_repairable(c.get('cause'), c.get('pages_verdict'))]
    return {
        'out_of_bounds_copy_ids': [c['copy_id'] for c in fixable if c.get('cause') == 'out_of_bounds_annotations'],
        'worker_died_copy_ids': [c['copy_id'] for c in fixable if c.get('cause') == 'worker_died'],
        'refinalize_copy_ids': [c['copy_id'] for c in fixable],
        'bad_pages': [c for c in checked if c.get('pages_verdict') != 'ok'],
        'still_running': [c for c in checked if c.get('cause') == 'in_progress'],
    }


def describe_still_running(copy):
    """One report line for a copy whose finalize is still running (not stale yet)."""
    return '%s: finalize still running (not stale yet)' % (copy.get('anonymous_id') or copy.get('copy_id'))


class FilterModule(object):
    def filters(self):
        return {
            'finalize_pending': finalize_pending,
            'with_page_verdicts': with_page_verdicts,
            'describe_pages_problem': describe_pages_problem,
            'finalization_decision': finalization_decision,
            'describe_still_running': describe_still_running,
        }
