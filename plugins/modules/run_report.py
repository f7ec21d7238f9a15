#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: run_report
short_description: Turn a role's report into its document, files and job artifacts, in one task
version_added: 0.3.0
description:
  - The last step of every korrigo.ops role (the common role's report tasks). On the controller, O(report) becomes
    the machine-readable document of P(korrigo.ops.report_document#filter), which is kept as JSON, Markdown
    (P(korrigo.ops.report_markdown#filter)) and HTML (P(korrigo.ops.report_html#filter)) in O(report_dir) by
    M(korrigo.ops.report_files) (this run's files and the C(latest) ones), and handed to AWX and ansible-runner as
    the job artifact C(korrigo_reports) (as M(ansible.builtin.set_stats) would, keyed by host then scenario).
  - One task instead of one per step, because every task that reads a large report costs Ansible its templating;
    the report is read once here.
  - This is an action plugin; the module itself only documents it.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  report:
    description:
      - The role's report (a dictionary with at least C(scenario)).
    type: dict
    required: true
  host:
    description:
      - The school the report is about; the inventory host by default.
    type: str
  started:
    description:
      - When the run started, ISO 8601 in UTC (C(korrigo_run_started)); the file names carry this time.
    type: str
  versions:
    description:
      - More versions to record in the document (e.g. C(ansible-core)).
    type: dict
    default: {}
  report_dir:
    description:
      - Where the report files are kept on the target, as M(korrigo.ops.report_files) writes them; empty keeps none.
    type: str
    default: ''
  stats:
    description:
      - Hand the document to AWX and ansible-runner as the C(korrigo_reports) job artifact.
    type: bool
    default: true
  stats_details:
    description:
      - With O(stats), keep C(details), C(facts_before) and C(facts_after) in the artifact.
    type: bool
    default: true
  summaries:
    description:
      - The summaries of this host's earlier reports of the run, by scenario (the C(summaries) this action returned
        last); RV(summaries) is them plus this report's. The fleet summary reads RV(summaries) of the last one.
    type: dict
    default: {}
attributes:
  action:
    description: The work is done on the controller; the files are written on the target.
    support: full
  check_mode:
    description: In check mode no file is written (the roles run it with C(check_mode=false), a dry run's report
      is kept too).
    support: full
  diff_mode:
    description: No diff is returned.
    support: none
  idempotent:
    description: A report is a record of its run; C(changed) is always false.
    support: full
seealso:
  - module: korrigo.ops.report_files
'''

EXAMPLES = r'''
- name: Keep the report and hand it to AWX
  korrigo.ops.run_report:
    report: "{{ lock_conflicts_report }}"
    started: "{{ korrigo_run_started }}"
    report_dir: /var/lib/korrigo-ops/reports
  check_mode: false
  register: korrigo_run_report

- name: Another role's report, remembered beside the first one's for the fleet summary
  korrigo.ops.run_report:
    report: "{{ triage_report }}"
    summaries: "{{ korrigo_run_report.summaries | default({}) }}"
  register: korrigo_run_report
'''

RETURN = r'''
summary:
  description: What a fleet summary row is made of (scenario, title, severity, status, version, what was done,
    what needs a human, the files).
  returned: success
  type: dict
summaries:
  description: O(summaries) with RV(summary) added under its scenario (a scenario run again replaces its own).
  returned: success
  type: dict
files:
  description: The report files of this run (C(json), C(markdown), C(html), C(latest)), when O(report_dir) is set.
  returned: success
  type: dict
written:
  description: Full paths of the files created or changed.
  returned: when O(report_dir) is set
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.report_files import RUN_REPORT_ARGUMENT_SPEC


def main():
    module = AnsibleModule(argument_spec=RUN_REPORT_ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg='korrigo.ops.run_report is an action plugin: it runs on the controller, not as a module')


if __name__ == '__main__':
    main()
