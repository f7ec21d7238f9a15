# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The filters' documentation lives next to this file, one YAML file per filter
# (report_text.yml, describe_action.yml): a DOCUMENTATION block here would document only one of them.

from ansible.errors import AnsibleFilterError

SECTIONS = (('found', 'Found'), ('done', 'Done'), ('needs_human', 'Needs a human'))


def report_text(report):
    """Lines of the report; a list so Ansible's debug output keeps one line per entry."""
    if not isinstance(report, dict) or 'scenario' not in report:
        raise AnsibleFilterError("report_text expects a korrigo.ops report dictionary with a 'scenario' key")
    mode = ' [CHECK MODE: nothing was changed]' if report.get('check_mode') else ''
    status = 'status: %s | severity: %s | korrigo: %s' % (
        report.get('status', 'unknown'), report.get('severity', 'n/a'), report.get('korrigo_version', 'unknown'))
    lines = ['%s: %s%s' % (report['scenario'], report.get('title', ''), mode), status]
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
    text = '%s %s' % (action.get('kind', 'change'), action.get('anonymous_id') or action.get('copy_id')
                      or 'pid %s' % action.get('pid'))
    if action.get('pid') and action.get('reason'):
        text += ' (%s, %s, %s)' % (action.get('usename'), action.get('application_name'), action['reason'])
    if action.get('gap'):
        text += ' (%s)' % action['gap']
    if action.get('owner'):
        text += ' (lock of %s)' % action['owner']
    if before.get('status') and before.get('status') != after.get('status'):
        text += ': %s -> %s' % (before['status'], after.get('status'))
    return text


class FilterModule(object):
    def filters(self):
        return {'report_text': report_text, 'describe_action': describe_action}
