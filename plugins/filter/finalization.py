# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in finalize_pending.yml, with_page_verdicts.yml and describe_pages_problem.yml next to this file.

from ansible.errors import AnsibleFilterError


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


# Worst first: a page outside the media root, a page that does not open, a page gone from disk.
PAGE_PROBLEMS = (
    ('refused', ('refused',)),
    ('unreadable_pages', ('corrupted', 'empty', 'too_large', 'timeout', 'encrypted', 'too_many_pages')),
    ('missing_pages', ('missing',)),
)
PAGE_ADVICE = {
    'no_pages': 'no page image in its booklets (finalize fails with "No pages found to flatten") - re-import the scan',
    'missing_pages': 'page images missing from the media root - restore them from backup or re-import the scan'
                     ' (a re-finalize would leave them out of the final PDF)',
    'unreadable_pages': 'page images that do not open - restore them from backup or re-import the scan',
    'refused': 'page image paths lie outside the media root - check exams_booklet.pages_images',
}


def pages_verdict(copy, checked):
    """The verdict on one copy's page images (``checked``: pdf_check kind=image results for them, in order)."""
    if not copy.get('pages_images'):
        return 'no_pages', []
    problems = [dict(path=c.get('path'), verdict=c['verdict'], detail=c.get('detail') or '')
                for c in checked if c['verdict'] != 'ok']
    for verdict, kinds in PAGE_PROBLEMS:
        if any(p['verdict'] in kinds for p in problems):
            return verdict, problems
    return 'ok', problems


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
        verdict, problems = pages_verdict(copy, files[offset:offset + count])
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


class FilterModule(object):
    def filters(self):
        return {
            'finalize_pending': finalize_pending,
            'with_page_verdicts': with_page_verdicts,
            'describe_pages_problem': describe_pages_problem,
        }
