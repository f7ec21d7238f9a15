# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in describe_pdf_problem.yml next to this file.

from ansible.errors import AnsibleFilterError


def describe_pdf_problem(copy):
    """One report line for a stuck copy whose source PDF cannot be imported (copy_import's ``flagged`` entry)."""
    if not isinstance(copy, dict):
        raise AnsibleFilterError("describe_pdf_problem expects an entry of korrigo.ops.copy_import's flagged list")
    name = copy.get('anonymous_id') or copy.get('copy_id')
    return '%s: PDF %s - ask for a re-upload' % (name, copy.get('verdict', 'unknown'))


class FilterModule(object):
    def filters(self):
        return {'describe_pdf_problem': describe_pdf_problem}
