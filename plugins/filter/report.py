# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: report_text
short_description: Render a korrigo.ops remediation report as text a person reads at a glance
version_added: 0.1.0
description:
  - Takes the report dictionary every korrigo.ops role builds (scenario, title, severity, status,
    found, done, needs_human) and renders one screen of text.
positional: _input
options:
  _input:
    description: The report dictionary.
    type: dict
    required: true
'''

EXAMPLES = r'''
- name: Print the report
  ansible.builtin.debug:
    msg: "{{ korrigo_report | korrigo.ops.report_text }}"
'''

RETURN = r'''
_value:
  description: The report as lines of text.
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError

SECTIONS = (('found', 'Found'), ('done', 'Done'), ('needs_human', 'Needs a human'))


def report_text(report):
    """Lines of the report; a list so Ansible's debug output keeps one line per entry."""
    if not isinstance(report, dict) or 'scenario' not in report:
        raise AnsibleFilterError("report_text expects a korrigo.ops report dictionary with a 'scenario' key")
    mode = ' [CHECK MODE: nothing was changed]' if report.get('check_mode') else ''
    lines = ['%s: %s%s' % (report['scenario'], report.get('title', ''), mode),
             'status: %s | severity: %s | korrigo: %s' % (report.get('status', 'unknown'),
                                                         report.get('severity', 'n/a'),
                                                         report.get('korrigo_version', 'unknown'))]
    for key, heading in SECTIONS:
        entries = report.get(key) or []
        lines.append('%s (%d):' % (heading, len(entries)))
        lines.extend('  - %s' % entry for entry in entries)
        if not entries:
            lines.append('  - nothing')
    return lines


def describe_action(action):
    """One line for one entry of a module's `actions` list."""
    if not isinstance(action, dict):
        raise AnsibleFilterError("describe_action expects an action dictionary from a korrigo.ops module")
    before = action.get('before') or {}
    after = action.get('after') or {}
    text = '%s %s' % (action.get('kind', 'change'), action.get('anonymous_id') or action.get('copy_id'))
    if action.get('owner'):
        text += ' (lock of %s)' % action['owner']
    if before.get('status') and before.get('status') != after.get('status'):
        text += ': %s -> %s' % (before['status'], after.get('status'))
    return text


class FilterModule(object):
    def filters(self):
        return {'report_text': report_text, 'describe_action': describe_action}
