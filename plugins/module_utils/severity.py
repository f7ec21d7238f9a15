# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severity (P0-P3) and status of a Korrigo incident: the one home of these rules.

Triage (``korrigo.ops.triage_verdict``) and every scenario report (``korrigo.ops.scenario_verdict``) call
``assess``; the same facts give the same severity wherever they are read. Facts come in one shape, any part of
which may be missing::

    {services: compose_services result, database: {reachable, error}, korrigo: korrigo_facts,
     latency: korrigo_latency_facts, log: korrigo_log_facts, audit: audit_trail result,
     workers: celery_health result}

The incident playbook's appendix B, as this collection reads it:

* P0 - the database, Redis or the backend is down, or the Celery worker is down (its compose service not running,
  or no worker answering the ping) while copies or tasks wait;
* P1 - more than ``stuck_p1`` copies stuck (stuck imports, failed or interrupted finalizations), a request error
  rate over ``error_rate_p1``, every request slow (overall p95 over ``latency_threshold``), or the worker down
  with nothing waiting yet;
* P2 - one to ``stuck_p1`` copies stuck, expired locks all held by one user, audit-trail gaps;
* P3 - slow endpoints or stalled database sessions, expired locks of several users (cleanup handles them);
* ``none`` otherwise. The severity is the highest one with a reason.

Pure Python, no Ansible import: filters wrap it, tests call it directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

SEVERITIES = ('P0', 'P1', 'P2', 'P3', 'none')
STUCK_P1 = 10
ERROR_RATE_P1 = 0.1
LATENCY_THRESHOLD = 5.0

# Remediation roles, in the incident playbook's order (scenarios 1 to 5), with the playbook that runs each,
# by their installed names.
PLAYBOOKS = (
    ('import_stuck', 'korrigo.ops.recover_stuck_imports'),
    ('finalization_failing', 'korrigo.ops.retry_failed_finalizations'),
    ('lock_conflicts', 'korrigo.ops.release_expired_locks'),
    ('high_latency', 'korrigo.ops.diagnose_latency'),
    ('audit_events', 'korrigo.ops.audit_trail_check'),
)
PLAYBOOK_OF = dict(PLAYBOOKS)
SCENARIOS = ('triage',) + tuple(role for role, _playbook in PLAYBOOKS)

SKIPPED = 'skipped: another run in progress'


def worst(severities):
    """The most severe of ``severities`` in SEVERITIES order (P0 first); None when none of them is a severity."""
    ranked = [s for s in SEVERITIES if s in set(severities or ())]
    return ranked[0] if ranked else None


def role_name(role):
    """The installed name of a role of this collection."""
    return 'korrigo.ops.%s' % role


def _num(value):
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _part(facts, key):
    value = facts.get(key)
    return value if isinstance(value, dict) else {}


def worker_down(services, workers):
    """The Celery worker is down: its compose service is not running, or the ping found no worker answering."""
    celery = services.get('celery')
    return (isinstance(celery, dict) and not celery.get('running')) or workers.get('healthy') is False


def stuck_counts(korrigo):
    """(stuck imports, failed finalizations, interrupted finalizations): the copies that do not progress.

    An interrupted finalization is a GRADING_IN_PROGRESS copy past the staleness delay (its worker died); one
    still within it is running, not stuck.
    """
    finalizations = korrigo.get('finalizations') or {}
    return (_num((korrigo.get('stuck_imports') or {}).get('stuck_total')),
            _num(finalizations.get('failed_total')), _num(finalizations.get('in_progress_stale')))


def backlog_length(latency, workers):
    """Tasks waiting in the Celery queue, from korrigo_latency_facts' backlog or celery_health's queue_length."""
    backlog = latency.get('backlog') or {}
    if backlog.get('length') is not None:
        return _num(backlog.get('length'))
    return _num(workers.get('queue_length'))


def assess(facts, stuck_p1=STUCK_P1, error_rate_p1=ERROR_RATE_P1, latency_threshold=LATENCY_THRESHOLD):
    """The severity of what ``facts`` show, its reasons per severity and the remediation roles to run."""
    if not isinstance(facts, dict):
        raise TypeError('expected the facts dictionary {services, database, korrigo, latency, log, audit, workers}')
    stuck_p1, error_rate_p1, latency_threshold = int(stuck_p1), float(error_rate_p1), float(latency_threshold)
    reasons = dict((severity, []) for severity in SEVERITIES[:-1])
    remediations = {}
    services, database, korrigo = _part(facts, 'services'), _part(facts, 'database'), _part(facts, 'korrigo')
    latency, log, audit, workers = _part(facts, 'latency'), _part(facts, 'log'), _part(facts, 'audit'), \
        _part(facts, 'workers')

    def remediate(role, why):
        remediations.setdefault(role, {'role': role, 'role_name': role_name(role), 'playbook': PLAYBOOK_OF[role],
                                       'why': []})['why'].append(why)

    down = sorted(name for name, s in services.items() if not (s or {}).get('running'))
    if not database.get('reachable', True):
        reasons['P0'].append('database unreachable: %s' % database.get('error'))
    for name in ('db', 'redis', 'backend'):
        if name in down:
            reasons['P0'].append('service %s is down' % name)

    stuck_imports, failed, interrupted = stuck_counts(korrigo)
    stuck = stuck_imports + failed + interrupted
    backlog = backlog_length(latency, workers)
    if worker_down(services, workers):
        if stuck + backlog > 0:
            reasons['P0'].append('Celery worker down with %d copies stuck and %d tasks queued: nothing progresses'
                                 % (stuck, backlog))
        else:
            reasons['P1'].append('Celery worker down (no copy waiting yet)')
        remediate('import_stuck', 'Celery worker down')
    if stuck > stuck_p1:
        reasons['P1'].append('%d copies stuck (more than %d)' % (stuck, stuck_p1))
    elif stuck > 0:
        reasons['P2'].append('%d copies stuck' % stuck)
    if stuck_imports:
        remediate('import_stuck', '%d stuck imports' % stuck_imports)
    if failed + interrupted:
        remediate('finalization_failing', '%d failed and %d interrupted finalizations' % (failed, interrupted))

    requests = log.get('requests') or {}
    metrics = latency.get('metrics') or {}
    error_rate, source = _num(requests.get('error_rate')), 'log, last %s min' % log.get('window_minutes')
    if not requests.get('total') and metrics.get('requests'):
        error_rate, source = _num(metrics.get('error_rate')), 'metrics since start'
    if error_rate > error_rate_p1:
        reasons['P1'].append('error rate %.1f %% (%s) over %.0f %%' % (error_rate * 100, source, error_rate_p1 * 100))
    overall_p95 = _num((metrics.get('overall') or {}).get('p95'))
    if overall_p95 > latency_threshold:
        reasons['P1'].append('all requests slow: overall p95 %.2f s over %s s' % (overall_p95, latency_threshold))
    slow = metrics.get('slow_endpoints') or []
    if slow:
        reasons['P3'].append('slow endpoints: %s' % ', '.join(
            '%s %s p95 %.2f s' % (e.get('method'), e.get('path'), _num(e.get('p95'))) for e in slow))
    sessions = latency.get('sessions') or {}
    stalled = (int(_num(sessions.get('blocked_total'))), int(_num(sessions.get('stale_idle_in_transaction'))),
               int(_num(sessions.get('long_running'))))
    if any(stalled):
        reasons['P3'].append('database sessions: %d blocked, %d idle in transaction, %d long-running' % stalled)
    if slow or overall_p95 > latency_threshold or any(stalled):
        remediate('high_latency', 'latency symptoms')

    locks = korrigo.get('locks') or {}
    expired_owners = sorted((locks.get('expired_by_owner') or {}).keys())
    expired = int(_num(locks.get('expired_total')))
    if expired:
        if len(expired_owners) == 1:
            reasons['P2'].append('lock conflicts for one user (%s): %d expired locks' % (expired_owners[0], expired))
        else:
            reasons['P3'].append('%d expired locks of %d users (cleanup handles them)' % (expired, len(expired_owners)))
        remediate('lock_conflicts', '%d expired locks' % expired)

    gaps = int(_num(audit.get('copies_with_gaps')))
    if gaps:
        reasons['P2'].append('audit trail gaps on %d copies: %s' % (gaps, ', '.join(
            '%s %d' % (k, v) for k, v in sorted((audit.get('gap_counts') or {}).items()) if v)))
        remediate('audit_events', '%d copies with audit gaps' % gaps)

    severity = next((s for s in SEVERITIES[:-1] if reasons[s]), 'none')
    roles = [role for role, _playbook in PLAYBOOKS if role in remediations]
    return {
        'severity': severity,
        'reasons': reasons,
        'summary': reasons[severity] if severity != 'none' else ['no incident found'],
        'remediations': [remediations[role] for role in roles],
        'remediation_roles': roles,
        'services_down': down,
        'stuck_copies': int(stuck),
    }


def concurrent_run_skipped(results):
    """True for True, or for a list of registered module results one of which skipped (another run held the
    remediation's advisory lock); results of tasks that did not run count as not skipped."""
    if isinstance(results, (list, tuple)):
        return any(isinstance(r, dict) and r.get('skipped_concurrent_run') is True for r in results)
    return results is True


def status(severity, done=0, needs_human=0, check_mode=False, skipped_concurrent_run=False, failure=''):
    """A report's status, from what was found (``severity``), done (a count or list) and left to a human.

    In this order: ``failed: <failure>``; ``skipped: another run in progress``; something done (or, in check
    mode, that would be) - ``resolved`` / ``dry run: would resolve``, or with something left to a human
    ``partly resolved: needs a human`` / ``dry run: would partly resolve: needs a human``; nothing done -
    ``healthy`` (severity none), ``needs a human`` (something is left to a human), else ``unchanged``.
    """
    if severity not in SEVERITIES:
        raise ValueError('unknown severity %r (expected one of %s)' % (severity, ', '.join(SEVERITIES)))
    done = done if isinstance(done, int) else len(done or [])
    needs_human = needs_human if isinstance(needs_human, int) else len(needs_human or [])
    if failure:
        return 'failed: %s' % failure
    if concurrent_run_skipped(skipped_concurrent_run):
        return SKIPPED
    if done:
        if needs_human:
            return 'dry run: would partly resolve: needs a human' if check_mode else 'partly resolved: needs a human'
        return 'dry run: would resolve' if check_mode else 'resolved'
    if severity == 'none':
        return 'healthy'
    return 'needs a human' if needs_human else 'unchanged'


def scenario_verdict(scenario, facts_before, facts_after=None, actions=None, needs_human=None, check_mode=False,
                     skipped_concurrent_run=False, failure='', **thresholds):
    """{severity, status, reasons, severity_after} of one scenario report.

    ``facts_before``/``facts_after``: the scenario's facts in ``assess``' shape; ``actions``: what was (or
    would be) done; ``needs_human``: the report's lines for a human; ``skipped_concurrent_run``: a boolean or
    the registered results of the role's remediation modules; ``failure``: why the remediation could not act.
    """
    if scenario not in SCENARIOS:
        raise ValueError('unknown scenario %r (expected one of %s)' % (scenario, ', '.join(SCENARIOS)))
    before = assess(facts_before, **thresholds)
    after = assess(facts_after, **thresholds) if facts_after else None
    return {
        'severity': before['severity'],
        'status': status(before['severity'], actions or [], needs_human or [], check_mode,
                         skipped_concurrent_run, failure),
        'reasons': before['reasons'],
        'severity_after': after['severity'] if after else None,
    }
