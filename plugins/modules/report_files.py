#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: report_files
short_description: Write a run's report files into one directory, in one call
version_added: 0.3.0
description:
  - Writes every file of O(files) into O(path) (created with O(directory_mode) when missing), each atomically
    (a temporary file in the same directory, then a rename), so a reader never sees half a report.
  - The roles keep each run's report (JSON, Markdown, HTML, under a name with the run's time, plus the C(latest)
    ones) and the fleet summary with it. One module call replaces one M(ansible.builtin.copy) per file; at a
    district's fifty schools that is the difference between seconds and a minute of report writing.
  - A file name is a plain name inside O(path); a name with a directory part, C(..) or a leading dot is refused
    before anything is written.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  path:
    description:
      - Directory the files are written to.
    type: path
    required: true
  files:
    description:
      - The files, in the order they are written.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - File name inside O(path).
        type: str
        required: true
      content:
        description:
          - Its whole content (text, written as UTF-8).
        type: str
        required: true
      also_as:
        description:
          - More file names inside O(path) written with the same content (a report's C(latest) copies), so a large
            content is rendered and sent once.
        type: list
        elements: str
        default: []
  mode:
    description:
      - Permissions of every written file.
    type: raw
    default: '0640'
  directory_mode:
    description:
      - Permissions of O(path) when the module creates it.
    type: raw
    default: '0750'
attributes:
  check_mode:
    description: Writes nothing; reports which files a real run would create or change.
    support: full
  diff_mode:
    description: Returns, per file, its size and SHA-1 before and after (the reports themselves can be large).
    support: full
  idempotent:
    description: Writing the same contents again reports no change.
    support: full
seealso:
  - module: ansible.builtin.copy
'''

EXAMPLES = r'''
- name: Keep the report as JSON and Markdown
  korrigo.ops.report_files:
    path: /var/lib/korrigo-ops/reports
    files:
      - name: triage-school-1-20261202T031500Z.json
        content: "{{ korrigo_report_document | to_nice_json }}"
        also_as: [triage-school-1-latest.json]
      - name: triage-school-1-latest.md
        content: "{{ korrigo_report_document | korrigo.ops.report_markdown }}"
'''

RETURN = r'''
written:
  description: Full paths of the files created or changed (all of them in check mode would be these).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/korrigo-ops/reports/triage-school-1-latest.json]
unchanged:
  description: Full paths of the files that already held this content.
  returned: always
  type: list
  elements: str
path:
  description: The directory.
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.errors import run_module
from ansible_collections.korrigo.ops.plugins.module_utils.report_files import ARGUMENT_SPEC, write_reports


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    run_module(module, lambda: write_reports(module))


if __name__ == '__main__':
    main()
