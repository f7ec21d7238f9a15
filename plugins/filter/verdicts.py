# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The filters' documentation lives next to this file, one YAML file per filter
# (compose_services.yml, latency_findings.yml, latency_decision.yml, latency_todo.yml, triage_verdict.yml,
# scenario_verdict.yml). Pure logic: the roles
# gather facts with the modules, these filters decide (severity and status in module_utils/severity.py);
# tests/unit/plugins/filter/test_verdicts.py covers them.

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.korrigo.ops.plugins.module_utils import severity
from ansible_collections.korrigo.ops.plugins.module_utils.compose import COMPOSE_PROJECT_LABEL, COMPOSE_SERVICE_LABEL
KORRIGO_SERVICES = ('db', 'redis', 'backend', 'celery')


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
                              'check redis (korrigo.ops.recover_stuck_imports restarts what is down)', False))
    elif (backlog.get('length') or 0) > backlog_threshold:
        found.append(_finding(
            75, 'backlog', '%d tasks waiting in the %s queue' % (backlog['length'], backlog.get('queue')),
            'Celery workers are overwhelmed or not consuming (playbook: over %d)' % backlog_threshold,
            'check workers with korrigo.ops.celery_health; raise concurrency or run korrigo.ops.recover_stuck_imports', False))
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


# The findings each of the role's remediations handles (pg_sessions terminates the blocker or the idle session,
# postgresql_idx creates the index).
HANDLED_BY = {'terminated': ('idle_in_transaction', 'lock_contention'), 'indexes_created': ('missing_index',)}


def latency_decision(facts, terminate_sessions=False, terminate_long_running=False, create_missing_indexes=False,
                     restart_worker=False, backlog_threshold=100):
    """Which of the high_latency role's remediations run: each only when enabled and its trigger holds."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError("latency_decision expects ansible_facts.korrigo_latency (with workers)")
    sessions, workers = facts.get('sessions') or {}, facts.get('workers') or {}
    return {
        'terminate': boolean(terminate_sessions) and (
            (sessions.get('stale_idle_in_transaction') or 0) > 0
            or (boolean(terminate_long_running) and (sessions.get('long_running') or 0) > 0)),
        'create_indexes': boolean(create_missing_indexes) and len(facts.get('missing_indexes') or []) > 0,
        'restart_worker': boolean(restart_worker) and workers.get('healthy', True) is False
        and int((facts.get('backlog') or {}).get('length') or 0) > int(backlog_threshold),
    }


def latency_todo(findings, terminated=False, indexes_created=False):
    """What is left to a human once the remediations ran: every manual finding, then the automatic ones whose
    remediation did not run (``terminated``: sessions were terminated; ``indexes_created``: indexes were)."""
    if not isinstance(findings, list):
        raise AnsibleFilterError("latency_todo expects the findings of korrigo.ops.latency_findings")
    handled = set(HANDLED_BY['terminated'] if terminated else ()) | set(
        HANDLED_BY['indexes_created'] if indexes_created else ())
    manual = [f for f in findings if not f.get('automatic')]
    automatic = [f for f in findings if f.get('automatic') and f['kind'] not in handled]
    return [f['todo'] for f in manual + automatic]


def _filter_error(name, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise AnsibleFilterError('%s: %s' % (name, err))


def triage_verdict(facts, stuck_p1=severity.STUCK_P1, error_rate_p1=severity.ERROR_RATE_P1,
                   latency_threshold=severity.LATENCY_THRESHOLD):
    """Appendix B's severity (P0-P3) from one triage run's facts, with the reasons and the remediations to run
    (module_utils/severity.py decides, as for every scenario report)."""
    return _filter_error('triage_verdict', severity.assess, facts, stuck_p1=stuck_p1, error_rate_p1=error_rate_p1,
                         latency_threshold=latency_threshold)


def scenario_verdict(scenario, facts_before, facts_after=None, actions=None, needs_human=None, check_mode=False,
                     skipped_concurrent_run=False, failure='', stuck_p1=severity.STUCK_P1,
                     error_rate_p1=severity.ERROR_RATE_P1, latency_threshold=severity.LATENCY_THRESHOLD):
    """A scenario report's severity and status, by the same rules as triage's."""
    return _filter_error('scenario_verdict', severity.scenario_verdict, scenario, facts_before, facts_after,
                         actions, needs_human, check_mode, skipped_concurrent_run, failure, stuck_p1=stuck_p1,
                         error_rate_p1=error_rate_p1, latency_threshold=latency_threshold)


class FilterModule(object):
    def filters(self):
        return {
            'compose_services': compose_services,
            'latency_findings': latency_findings,
            'latency_decision': latency_decision,
            'latency_todo': latency_todo,
            'triage_verdict': triage_verdict,
            'scenario_verdict': scenario_verdict,
        }
