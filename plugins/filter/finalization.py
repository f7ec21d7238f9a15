# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in finalize_pending.yml, with_verdicts.yml and describe_pdf_problem.yml next to this file.

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


def with_verdicts(copies, files):
    """Each copy with the pdf_check verdict of its source PDF (files come back in the order of the paths)."""
    if not isinstance(copies, list) or not isinstance(files, list) or len(copies) != len(files):
        raise AnsibleFilterError("with_verdicts expects the copies and pdf_check's files for their pdf_source, in order")
    return [dict(copy, pdf_verdict=checked['verdict'], pdf_detail=checked.get('detail'))
            for copy, checked in zip(copies, files)]


ADVICE = {
    'missing': 'source PDF missing - restore it from backup or ask for a re-upload',
    'refused': 'source PDF path lies outside the media root - check exams_copy.pdf_source',
}


def describe_pdf_problem(copy):
    """One report line for a copy whose source PDF cannot be finalized."""
    verdict = copy.get('pdf_verdict', 'unknown')
    advice = ADVICE.get(verdict, 'source PDF is %s - ask for a re-upload' % verdict)
    return '%s: %s' % (copy.get('anonymous_id') or copy.get('copy_id'), advice)


class FilterModule(object):
    def filters(self):
        return {
            'finalize_pending': finalize_pending,
            'with_verdicts': with_verdicts,
            'describe_pdf_problem': describe_pdf_problem,
        }
