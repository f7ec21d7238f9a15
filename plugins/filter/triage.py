# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in triage_facts.yml, triage_gaps.yml and triage_report.yml next to this file. The triage role
# registers what each read-only step answered; these filters shape it: the facts triage_verdict classifies,
# the sources that did not answer, and the report (severity and status from module_utils/severity.py).

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.module_utils import severity
from ansible_collections.korrigo.ops.plugins.filter.verdicts import compose_services

# Each source of facts, the key its registered result has when it answered, and its name in the report.
SOURCES = (
    ('docker', 'containers', 'docker'),
    ('workflow', 'ansible_facts', 'database'),
    ('latency', 'ansible_facts', 'latency facts'),
    ('audit', 'gap_counts', 'audit trail'),
    ('log', 'ansible_facts', 'log'),
)
TOP_ERRORS = 5


def _results(results):
    if not isinstance(results, dict):
        raise AnsibleFilterError('expected the registered results {docker, workflow, latency, audit, log} of triage')
    return dict((name, results.get(name) if isinstance(results.get(name), dict) else {}) for name, _k, _t in SOURCES)


def triage_facts(results, project='korrigo'):
    """The facts triage_verdict classifies, from the results of each read-only step (missing parts stay empty)."""
    results = _results(results)
    workflow = results['workflow']
    return {
        'services': compose_services(results['docker']['containers'], project=project)
        if 'containers' in results['docker'] else {},
        'database': {'reachable': 'ansible_facts' in workflow, 'error': workflow.get('msg') or ''},
        # the audit check is korrigo_facts' audit subset; it has a key of its own here
        'korrigo': dict((k, v) for k, v in ((workflow.get('ansible_facts') or {}).get('korrigo') or {}).items()
                        if k != 'audit'),
        'latency': (results['latency'].get('ansible_facts') or {}).get('korrigo_latency') or {},
        'log': (results['log'].get('ansible_facts') or {}).get('korrigo_log') or {},
        'audit': results['audit'] if 'gap_counts' in results['audit'] else {},
    }


def triage_gaps(results, log_file=''):
    """What triage could not gather, one line each: sources that did not answer, no log file, metrics, broker."""
    results = _results(results)
    gaps = ['%s: %s' % (title, results[name].get('msg') or ('no answer' if name == 'docker' else ''))
            for name, answered, title in SOURCES if answered not in results[name]]
    facts = triage_facts(results)
    if not facts['log'].get('exists', True):
        gaps.append('log file missing: %s' % log_file)
    metrics = facts['latency'].get('metrics') or {}
    if not metrics.get('scraped', True):
        gaps.append('metrics: %s' % metrics.get('error'))
    backlog = facts['latency'].get('backlog') or {}
    if 'error' in backlog:
        gaps.append('broker: %s' % backlog['error'])
    return gaps


def _found(facts, verdict, log_window_minutes):
    services, korrigo, latency = facts.get('services') or {}, facts.get('korrigo') or {}, facts.get('latency') or {}
    log, audit = facts.get('log') or {}, facts.get('audit') or {}
    found = ['services: %s' % (', '.join('%s=%s' % (name, s.get('state')) for name, s in services.items())
                               if services else 'unknown')]
    if korrigo:
        found.append('copies by status: %s' % json.dumps(korrigo.get('copies_by_status')))
    if 'locks' in korrigo:
        found.append('locks: %s (%s expired)' % (korrigo['locks'].get('total'), korrigo['locks'].get('expired_total')))
    if 'connections' in latency:
        found.append('database connections %s/%s, celery backlog %s' % (
            latency['connections'].get('total'), latency['connections'].get('max_connections'),
            (latency.get('backlog') or {}).get('length', 'n/a')))
    requests = log.get('requests') or {}
    found.append('log (%s min): %s errors, %s requests, error rate %s %%' % (
        log_window_minutes, log.get('errors_total', 'n/a'), requests.get('total', 0),
        round(float(requests.get('error_rate') or 0) * 100, 1)))
    found.extend('%sx %s' % (s.get('count'), s.get('signature')) for s in (log.get('signatures') or [])[:TOP_ERRORS])
    if audit:
        found.append('audit gaps: %s copies' % audit.get('copies_with_gaps'))
    reasons = verdict.get('reasons') or {}
    found.append('P0-P3 reasons: %s' % ', '.join(s for s in severity.SEVERITIES[:-1] if reasons.get(s)))
    found.extend(reason for s in severity.SEVERITIES[:-1] for reason in reasons.get(s) or [])
    return found


def triage_report(facts, verdict, gaps=None, check_mode=False, log_window_minutes=None):
    """The triage report (the keys every report has), from triage_facts, triage_verdict and triage_gaps."""
    if not isinstance(facts, dict) or not isinstance(verdict, dict) or verdict.get('severity') not in severity.SEVERITIES:
        raise AnsibleFilterError('triage_report expects the triage facts and the triage_verdict result (a severity, '
                                 'one of %s): nothing could be classified' % ', '.join(severity.SEVERITIES))
    needs_human = ['%s (role %s) <- %s' % (r['playbook'], r['role_name'], ', '.join(r['why']))
                   for r in verdict.get('remediations') or []]
    needs_human += ['not gathered: %s' % gap for gap in gaps or []]
    return {
        'scenario': 'triage',
        'title': 'Triage (incident playbook, appendices A and B)',
        'korrigo_version': ((facts.get('korrigo') or {}).get('version') or {}).get('name', 'unknown'),
        'check_mode': bool(check_mode),
        'severity': verdict['severity'],
        'status': severity.status(verdict['severity'], [], needs_human, bool(check_mode)),
        'found': _found(facts, verdict, log_window_minutes),
        'done': [],
        'needs_human': needs_human,
        'details': {'verdict': verdict, 'facts': facts},
    }


class FilterModule(object):
    def filters(self):
        return {
            'triage_facts': triage_facts,
            'triage_gaps': triage_gaps,
            'triage_report': triage_report,
        }
