# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The filters' documentation lives next to this file, one YAML file per filter
# (compose_services.yml, latency_findings.yml, triage_verdict.yml). Pure logic: the roles gather facts
# with the modules, these filters decide; tests/unit/plugins/test_verdicts.py covers them.

from ansible.errors import AnsibleFilterError

COMPOSE_PROJECT_LABEL = 'com.docker.compose.project'
COMPOSE_SERVICE_LABEL = 'com.docker.compose.service'
KORRIGO_SERVICES = ('db', 'redis', 'backend', 'celery')

# Remediation roles and the playbook that runs each (incident playbook scenarios 1 to 5).
PLAYBOOKS = {
    'import_stuck': 'playbooks/recover_stuck_imports.yml',
    'finalization_failing': 'playbooks/retry_failed_finalizations.yml',
    'lock_conflicts': 'playbooks/release_expired_locks.yml',
    'high_latency': 'playbooks/diagnose_latency.yml',
    'audit_events': 'playbooks/audit_trail_check.yml',
}
SEVERITIES = ('P0', 'P1', 'P2', 'P3', 'none')


def compose_services(containers, project='korrigo', expected=KORRIGO_SERVICES):
    """{service: {running, state, status, containers}} from docker containers (community.docker.docker_host_info,
    verbose), found by the compose labels (Compose v1 and v2 name containers differently)."""
    if not isinstance(containers, list):
        raise AnsibleFilterError("compose_services expects the containers list of community.docker.docker_host_info")
    services = dict((name, {'running': False, 'state': 'missing', 'status': None, 'containers': []})
                    for name in expected)
    for container in containers:
        labels = container.get('Labels') or {}
        if labels.get(COMPOSE_PROJECT_LABEL) != project or not labels.get(COMPOSE_SERVICE_LABEL):
            continue
        name = labels[COMPOSE_SERVICE_LABEL]
        entry = services.setdefault(name, {'running': False, 'state': 'missing', 'status': None, 'containers': []})
        entry['containers'].append(((container.get('Names') or ['?'])[0]).lstrip('/'))
        state = container.get('State') or 'unknown'
        if state == 'running' or not entry['running']:
            entry['state'], entry['status'] = state, container.get('Status')
        entry['running'] = entry['running'] or state == 'running'
    return services


def _finding(weight, kind, what, why, action, automatic=False):
    return {'weight': weight, 'kind': kind, 'what': what, 'why': why, 'action': action, 'automatic': automatic}


def latency_findings(facts, backlog_threshold=100, connections_ratio=0.8, non_idle_limit=50):
    """Scenario 4's findings from korrigo_latency_facts, most pressing first (rank 1)."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError("latency_findings expects ansible_facts.korrigo_latency")
    found = []
    sessions = facts.get('sessions') or {}
    for blocked in sessions.get('blocked') or []:
        blockers = ', '.join('pid %s (%s, %s)' % (b.get('pid'), b.get('application_name') or b.get('usename'), b.get('state'))
                             for b in blocked.get('blockers') or [])
        found.append(_finding(
            95, 'lock_contention',
            'session %s waits on a lock for %.0f s' % (blocked.get('pid'), blocked.get('query_seconds') or 0),
            'blocked by %s' % (blockers or 'sessions not visible to this role'),
            'terminate the blocker when it is idle in a transaction (high_latency_terminate_sessions)', True))
    if sessions.get('stale_idle_in_transaction'):
        found.append(_finding(
            90, 'idle_in_transaction', '%d session(s) idle in a transaction for over %s s'
            % (sessions['stale_idle_in_transaction'], (facts.get('thresholds') or {}).get('idle_in_transaction_seconds')),
            'an open transaction keeps its row locks (select_for_update waits behind it)',
            'terminate them with korrigo.ops.pg_sessions (high_latency_terminate_sessions)', True))
    if sessions.get('long_running'):
        found.append(_finding(
            80, 'long_running', '%d quer(ies) running for over %s s'
            % (sessions['long_running'], (facts.get('thresholds') or {}).get('long_running_seconds')),
            'a long query holds a connection and its locks',
            'check the query; terminate with high_latency_terminate_long_running', True))
    connections = facts.get('connections') or {}
    if connections.get('used_ratio', 0) > connections_ratio or sessions.get('non_idle_total', 0) > non_idle_limit:
        found.append(_finding(
            85, 'connections', '%s of %s connections used, %s non-idle'
            % (connections.get('total'), connections.get('max_connections'), sessions.get('non_idle_total')),
            'the database is overwhelmed (playbook: more than %d non-idle sessions)' % non_idle_limit,
            'scale the backend horizontally or pool connections', False))
    backlog = facts.get('backlog') or {}
    if backlog.get('error'):
        found.append(_finding(88, 'broker_unreachable', 'Celery broker unreachable', backlog['error'],
                              'check redis (recover_stuck_imports.yml restarts what is down)', False))
    elif (backlog.get('length') or 0) > backlog_threshold:
        found.append(_finding(
            75, 'backlog', '%d tasks waiting in the %s queue' % (backlog['length'], backlog.get('queue')),
            'Celery workers are overwhelmed or not consuming (playbook: over %d)' % backlog_threshold,
            'check workers with korrigo.ops.celery_health; raise concurrency or run recover_stuck_imports.yml', False))
    workers = facts.get('workers') or {}
    if workers and not workers.get('healthy', True):
        found.append(_finding(
            92, 'workers_not_answering', 'no Celery worker answers the ping (%s tasks queued)' % backlog.get('length'),
            'tasks pile up while nothing consumes them',
            'restart the worker with korrigo.ops.celery_health (high_latency_restart_worker)', True))
    elif workers:
        for worker in workers.get('workers') or []:
            if worker.get('active') and (backlog.get('length') or 0) > backlog_threshold:
                busy = '%s runs %s tasks, %s reserved' % (worker.get('name'), worker.get('active'), worker.get('reserved'))
                found.append(_finding(70, 'workers_busy', busy, 'the workers are saturated (compose: --concurrency=2)',
                                      'raise the Celery concurrency', False))
    metrics = facts.get('metrics') or {}
    if metrics and not metrics.get('scraped'):
        found.append(_finding(40, 'metrics_unreachable', 'Prometheus endpoint not scraped', metrics.get('error'),
                              'check korrigo_metrics_url and korrigo_metrics_token', False))
    for endpoint in metrics.get('slow_endpoints') or []:
        found.append(_finding(
            60 + min(float(endpoint.get('p95') or 0), 30.0) / 3.0, 'slow_endpoint',
            '%s %s p95 %.2f s (p50 %.2f s, p99 %.2f s, %d requests)'
            % (endpoint.get('method'), endpoint.get('path'), endpoint.get('p95') or 0, endpoint.get('p50') or 0,
               endpoint.get('p99') or 0, endpoint.get('count') or 0),
            'p95 above %s s' % metrics.get('latency_threshold_seconds'),
            'see the sessions and indexes findings; large PDFs belong in Celery tasks', False))
    for index in facts.get('missing_indexes') or []:
        found.append(_finding(
            50, 'missing_index', 'no index on %s.%s' % (index['table'], index['column']),
            'the hot query %s plans a %s' % (index.get('hot_query'), (index.get('plan') or {}).get('node')),
            '%s (then add it in a Django migration); created only with high_latency_create_missing_indexes'
            % index.get('create_statement'), True))
    statements = facts.get('pg_stat_statements') or {}
    for statement in statements.get('top') or []:
        if (statement.get('mean_exec_time') or 0) > 1000:
            found.append(_finding(55, 'slow_statement', 'statement averaging %.0f ms over %s calls'
                                  % (statement['mean_exec_time'], statement.get('calls')), statement.get('query'),
                                  'optimize the query (select_related, indexes)', False))
    if statements and not statements.get('installed'):
        found.append(_finding(5, 'pg_stat_statements_absent', 'pg_stat_statements is not installed',
                              'slow statements cannot be ranked', 'CREATE EXTENSION pg_stat_statements '
                              '(with shared_preload_libraries)', False))
    found.sort(key=lambda f: (-f['weight'], f['kind'], f['what']))
    for rank, finding in enumerate(found, 1):
        finding['rank'] = rank
        finding['text'] = '#%d %s: %s' % (rank, finding['what'], finding['why'])
        finding['todo'] = '%s (%s)' % (finding['action'], finding['what'])
    return found


def _num(value):
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def triage_verdict(facts, stuck_p1=10, error_rate_p1=0.1, latency_threshold=5.0):
    """Appendix B's severity (P0-P3) from one triage run's facts, with the reasons and the remediations to run.

    ``facts``: {services, database: {reachable, error}, korrigo (korrigo_facts), latency (korrigo_latency_facts),
    log (korrigo_log_facts), audit (audit_trail)}; any part may be missing.
    """
    if not isinstance(facts, dict):
        raise AnsibleFilterError("triage_verdict expects the triage facts dictionary")
    reasons = dict((severity, []) for severity in SEVERITIES[:-1])
    remediations = {}
    services = facts.get('services') or {}
    database = facts.get('database') or {}
    korrigo = facts.get('korrigo') or {}
    latency = facts.get('latency') or {}
    log = facts.get('log') or {}
    audit = facts.get('audit') or {}

    def remediate(role, why):
        remediations.setdefault(role, {'role': role, 'playbook': PLAYBOOKS[role], 'why': []})['why'].append(why)

    down = sorted(name for name, s in services.items() if not s.get('running'))
    if not database.get('reachable', True):
        reasons['P0'].append('database unreachable: %s' % database.get('error'))
    for name in ('db', 'redis', 'backend'):
        if name in down:
            reasons['P0'].append('service %s is down' % name)
    stuck_imports = _num((korrigo.get('stuck_imports') or {}).get('stuck_total'))
    finalizations = korrigo.get('finalizations') or {}
    failed, in_progress = _num(finalizations.get('failed_total')), _num(finalizations.get('in_progress_total'))
    stuck = stuck_imports + failed + in_progress
    backlog = _num((latency.get('backlog') or {}).get('length'))
    if 'celery' in down:
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
    if failed + in_progress:
        remediate('finalization_failing', '%d failed and %d interrupted finalizations' % (failed, in_progress))

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
    sessions = latency.get('sessions') or {}
    if slow:
        reasons['P3'].append('slow endpoints: %s' % ', '.join(
            '%s %s p95 %.2f s' % (e.get('method'), e.get('path'), _num(e.get('p95'))) for e in slow))
    if sessions.get('blocked_total') or sessions.get('stale_idle_in_transaction') or sessions.get('long_running'):
        reasons['P3'].append('database sessions: %d blocked, %d idle in transaction, %d long-running'
                             % (sessions.get('blocked_total') or 0, sessions.get('stale_idle_in_transaction') or 0,
                                sessions.get('long_running') or 0))
    if slow or overall_p95 > latency_threshold or sessions.get('blocked_total') \
            or sessions.get('stale_idle_in_transaction') or sessions.get('long_running'):
        remediate('high_latency', 'latency symptoms')

    locks = korrigo.get('locks') or {}
    expired_owners = sorted((locks.get('expired_by_owner') or {}).keys())
    if locks.get('expired_total'):
        if len(expired_owners) == 1:
            reasons['P2'].append('lock conflicts for one user (%s): %d expired locks'
                                 % (expired_owners[0], locks['expired_total']))
        else:
            reasons['P3'].append('%d expired locks of %d users (cleanup handles them)'
                                 % (locks['expired_total'], len(expired_owners)))
        remediate('lock_conflicts', '%d expired locks' % locks['expired_total'])

    if audit.get('copies_with_gaps'):
        reasons['P2'].append('audit trail gaps on %d copies: %s' % (audit['copies_with_gaps'], ', '.join(
            '%s %d' % (k, v) for k, v in sorted((audit.get('gap_counts') or {}).items()) if v)))
        remediate('audit_events', '%d copies with audit gaps' % audit['copies_with_gaps'])

    severity = next((s for s in SEVERITIES[:-1] if reasons[s]), 'none')
    return {
        'severity': severity,
        'reasons': reasons,
        'summary': reasons[severity] if severity != 'none' else ['no incident found'],
        'remediations': [remediations[r] for r in PLAYBOOKS if r in remediations],
        'remediation_roles': [r for r in PLAYBOOKS if r in remediations],
        'services_down': down,
        'stuck_copies': int(stuck),
    }


class FilterModule(object):
    def filters(self):
        return {
            'compose_services': compose_services,
            'latency_findings': latency_findings,
            'triage_verdict': triage_verdict,
        }
