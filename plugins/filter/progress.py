# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in finalize_pending.yml next to this file.

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


class FilterModule(object):
    def filters(self):
        return {'finalize_pending': finalize_pending}
