# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in audit_found.yml and describe_gaps.yml next to this file. The rules (which events each creation path
# leaves) are module_utils/creation.py's; these filters only say them in the audit_events report.

from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    CREATION_PATHS, expects_import, expects_validate,
)

GAP_COLUMNS = ('anonymous_id', 'status', 'creation_path', 'kind', 'missing', 'rule')
GAP_HEADER = ('investigate each gap (history is never rewritten): '
              'anonymous id | status | creation path | gap | missing | rule broken')


def _audit(result, name):
    if not isinstance(result, dict) or 'gap_counts' not in result:
        raise AnsibleFilterError('%s expects the result of korrigo.ops.audit_trail' % name)
    return result


def expected_events(version):
    """Which creation paths must have which events on ``version``, in one line."""
    imports = [p for p in CREATION_PATHS if expects_import(p)]
    validates = [p for p in CREATION_PATHS if expects_validate(p, version)]
    nothing = [p for p in CREATION_PATHS if p not in imports and p not in validates]
    return 'events expected by creation path on %s: IMPORT from %s; VALIDATE past STAGING from %s; none from %s' % (
        version, ', '.join(imports) or 'none', ', '.join(validates) or 'none', ', '.join(nothing) or 'none')


def audit_found(result):
    """The audit_events report's ``found`` lines from one audit_trail result."""
    result = _audit(result, 'audit_found')
    by_path = result.get('copies_by_creation_path') or {}
    repeats = result.get('normal_repeats') or {}
    return ([
        '%s copies checked, %s with gaps' % (result.get('copies_checked'), result.get('copies_with_gaps')),
        'copies by creation path: %s' % ', '.join('%s: %s' % item for item in by_path.items()),
        expected_events(result.get('korrigo_version')),
    ] + ['%s: %s' % item for item in (result.get('gap_counts') or {}).items() if item[1]] + [
        'normal, not gaps: %s copies with failed finalize attempts, %s successes hidden by get_or_create, %s copies '
        'with repeated annotation events (the playbook query would flag %s groups)' % (
            repeats.get('copies_with_failed_attempts'), repeats.get('success_hidden_by_get_or_create'),
            repeats.get('copies_with_repeated_annotation_events'), repeats.get('playbook_duplicate_groups')),
    ])


def describe_gaps(gaps):
    """The audit_events report's lines for a human: a header, then one line per gap (nothing without gaps)."""
    if not isinstance(gaps, list):
        raise AnsibleFilterError("describe_gaps expects the gaps list of korrigo.ops.audit_trail")
    lines = [' | '.join('%s' % gap.get(column) for column in GAP_COLUMNS) for gap in gaps]
    return [GAP_HEADER] + lines if lines else []


class FilterModule(object):
    def filters(self):
        return {'audit_found': audit_found, 'describe_gaps': describe_gaps}
