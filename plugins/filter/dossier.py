# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in dossier_report.yml and as_id_list.yml next to this file.

from ansible.errors import AnsibleFilterError

SCENARIOS = (('import_stuck', 'import'), ('finalization', 'finalization'), ('lock', 'lock'), ('audit', 'audit'))


def _fix_text(fix):
    extra = ' '.join('-e %s=%s' % (k, v) for k, v in sorted((fix.get('extra_vars') or {}).items()))
    return 'ansible-playbook %s%s (%s)' % (fix['playbook'], ' ' + extra if extra else '', fix['why'])


def dossier_report(result, check_mode=False):
    """The common report (korrigo.ops.common) for a copy_dossier result: one paragraph per copy, its verdicts and
    the playbooks that would fix it; unknown and ambiguous ids said as such. Decides nothing: the module did."""
    if not isinstance(result, dict) or 'dossiers' not in result:
        raise AnsibleFilterError("dossier_report expects the result of korrigo.ops.copy_dossier")
    found, needs_human, fixes = [], [], []
    for dossier in result['dossiers']:
        copy = dossier['copy']
        found.append('%s (%s, %s upload, copy %s)' % (copy['anonymous_id'], copy['status'], copy['creation_path'],
                                                      copy['copy_id']))
        for key, label in SCENARIOS:
            verdict = dossier['verdicts'][key]
            found.append('  %s: %s - %s' % (label, verdict['verdict'], verdict['why']))
            if verdict['verdict'] == 'needs_human':
                needs_human.append('%s: %s' % (copy['anonymous_id'], verdict['why']))
        for fix in dossier['fixes']:
            fixes.append('%s: %s' % (copy['anonymous_id'], _fix_text(fix)))
    for query in result.get('unknown', []):
        found.append('%s: no such copy (neither a copy id nor an anonymous id)' % query)
    for entry in result.get('ambiguous', []):
        names = ', '.join(m['anonymous_id'] for m in entry['matches'])
        needs_human.append('%s matches several copies (%s%s): give the full anonymous id or the copy id'
                           % (entry['query'], names, ', ...' if entry.get('more') else ''))
    if not result['dossiers']:
        status = 'no copy found'
    elif fixes:
        status = '%d fix(es) proposed' % len(fixes)
    else:
        status = 'nothing to fix'
    return {
        'scenario': 'copy_dossier',
        'title': 'Copy dossier',
        'korrigo_version': result.get('korrigo_version'),
        'check_mode': bool(check_mode),
        'severity': 'none',
        'status': status,
        'found': found,
        'done': [],
        'proposed': fixes,
        'needs_human': needs_human,
        'details': {'dossiers': result['dossiers'], 'unknown': result.get('unknown', []),
                    'ambiguous': result.get('ambiguous', [])},
    }


def as_id_list(value):
    """Copy ids from a list or one comma/space-separated string (``-e korrigo_copy=A,B``); empty entries dropped."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
    else:
        items = str(value).replace(',', ' ').split()
    return [i.strip() for i in items if i.strip()]


class FilterModule(object):
    def filters(self):
        return {'dossier_report': dossier_report, 'as_id_list': as_id_list}
