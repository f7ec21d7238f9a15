#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: korrigo_latency_facts
short_description: Diagnose Korrigo's latency (scenario 4) as data - Prometheus, PostgreSQL sessions, indexes, Celery backlog
version_added: 0.2.0
description:
  - Sets C(ansible_facts.korrigo_latency) for scenario 4 of the incident playbook (high latency). Read-only.
  - Prometheus - scrapes O(metrics_url) (header C(X-Metrics-Token) when O(metrics_token) is set), parses it with
    prometheus_client's parser and computes p50, p95 and p99 of C(http_request_duration_seconds) per endpoint the
    way PromQL's C(histogram_quantile) does, plus the share of 5xx answers in C(http_requests_total). With
    O(sample_seconds) the quantiles cover the requests between two scrapes (a rate window) instead of the
    counters since the backend started. An unreachable endpoint is reported, not fatal.
  - PostgreSQL - non-idle sessions with their duration and truncated query, sessions idle in a transaction,
    sessions waiting on a lock and who blocks them (C(pg_blocking_pids)), connections against C(max_connections),
    whether the indexes the playbook names exist (C(exams_copy.status), C(grading_copylock.expires_at)) with the
    C(CREATE INDEX CONCURRENTLY) statement of each missing one and an C(EXPLAIN) of the hot queries, and the
    slowest statements from C(pg_stat_statements) when that extension is installed (reported absent otherwise).
  - Celery - the backlog, C(LLEN) of the queue on O(broker_url). Worker health (ping, concurrency) is
    M(korrigo.ops.celery_health)'s job.
  - Runs in a read-only transaction; a read-only role is enough. To see other roles' query texts the role
    needs C(pg_read_all_stats) (member of C(pg_monitor)), otherwise PostgreSQL shows C(<insufficient privilege>).
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  gather_subset:
    description:
      - Parts to gather.
    type: list
    elements: str
    default: [ all ]
    choices: [ all, metrics, sessions, connections, indexes, statements, backlog ]
  metrics_url:
    description:
      - Korrigo's Prometheus endpoint (C(/metrics)). Empty skips the metrics.
    type: str
    default: ''
  metrics_token:
    description:
      - Korrigo's C(METRICS_TOKEN), sent as the C(X-Metrics-Token) header.
    type: str
    default: ''
  metrics_timeout:
    description:
      - Seconds to wait for the metrics endpoint.
    type: int
    default: 10
  validate_certs:
    description:
      - Verify the TLS certificate of O(metrics_url).
    type: bool
    default: true
  sample_seconds:
    description:
      - When above 0, scrape twice this many seconds apart and compute the quantiles on the difference
        (the requests of that window). 0 uses the counters as scraped (every request since the backend started).
    type: int
    default: 0
  latency_threshold_seconds:
    description:
      - An endpoint whose p95 exceeds this is listed in C(metrics.slow_endpoints) (the playbook's symptom is p95 > 5 s).
    type: float
    default: 5.0
  long_running_seconds:
    description:
      - An active query running longer than this is counted as long-running.
    type: int
    default: 300
  idle_in_transaction_seconds:
    description:
      - A session idle in a transaction for longer than this is counted as stale (it holds its locks).
    type: int
    default: 60
  query_length:
    description:
      - Characters of each query text kept.
    type: int
    default: 200
  list_limit:
    description:
      - Most sessions, statements and endpoints listed; counts always cover everything.
    type: int
    default: 50
  broker_url:
    description:
      - Korrigo's C(CELERY_BROKER_URL) (Redis). Empty skips the backlog.
      - It may carry the Redis password, so it is never logged.
    type: str
    default: ''
  queue:
    description:
      - The Celery queue whose length is the backlog (Korrigo only uses C(celery)).
    type: str
    default: celery
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.attributes_read_only
requirements:
  - prometheus_client on the host running the module when O(metrics_url) is set.
  - redis on the host running the module when O(broker_url) is set.
seealso:
  - module: korrigo.ops.pg_sessions
  - module: korrigo.ops.korrigo_facts
'''

EXAMPLES = r'''
- name: Everything scenario 4 looks at
  korrigo.ops.korrigo_latency_facts:
    login_host: 127.0.0.1
    login_user: korrigo
    login_password: "{{ korrigo_db_password }}"
    metrics_url: http://127.0.0.1:8088/metrics
    metrics_token: "{{ korrigo_metrics_token }}"
    broker_url: redis://127.0.0.1:6385/0

- name: Slowest endpoints over the next 30 seconds
  korrigo.ops.korrigo_latency_facts:
    database_url: "{{ korrigo_database_url }}"
    gather_subset: [metrics]
    metrics_url: http://127.0.0.1:8088/metrics
    sample_seconds: 30

- name: Show who blocks whom
  ansible.builtin.debug:
    var: ansible_facts.korrigo_latency.sessions.blocked
'''

RETURN = r'''
ansible_facts:
  description: Facts under the C(korrigo_latency) key.
  returned: always
  type: dict
  contains:
    korrigo_latency:
      description: The diagnosis.
      type: dict
      returned: always
      sample:
        metrics:
          scraped: true
          endpoints:
            - {method: GET, path: /api/_debug/slow/, count: 3, mean: 6.0, p50: 7.5, p95: 9.75, p99: 9.95}
          slow_endpoints: [{method: GET, path: /api/_debug/slow/, p95: 9.75}]
          requests: 412
          errors_5xx: 0
          error_rate: 0.0
        sessions: {non_idle_total: 2, idle_in_transaction_total: 1, stale_idle_in_transaction: 1,
                   long_running: 0, blocked_total: 1}
        connections: {total: 9, max_connections: 100, used_ratio: 0.09}
        indexes:
          - {table: exams_copy, column: status, present: false,
             create_statement: CREATE INDEX CONCURRENTLY IF NOT EXISTS "exams_copy_status_ops_idx" ON "exams_copy" ("status")}
        pg_stat_statements: {installed: false}
        backlog: {queue: celery, length: 0}
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.korrigo.ops.plugins.module_utils.broker import queue_length
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    jsonable, korrigo_common_argument_spec, psycopg2, read_only_session, sql,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils import prometheus

SUBSETS = ('metrics', 'sessions', 'connections', 'indexes', 'statements', 'backlog')

# The indexes the playbook names (root cause 4), the names this collection gives them, and the hot queries.
PLAYBOOK_INDEXES = (
    {'table': 'exams_copy', 'column': 'status', 'name': 'exams_copy_status_ops_idx',
     'hot_query': "SELECT * FROM exams_copy WHERE status = 'READY'"},
    {'table': 'grading_copylock', 'column': 'expires_at', 'name': 'grading_copylock_expires_at_ops_idx',
     'hot_query': "SELECT * FROM grading_copylock WHERE expires_at < now()"},
)

# Every client session but this one; the collection's own sessions are flagged (application_name korrigo.ops:*).
SESSIONS_SQL = """
WITH s AS (
    SELECT a.pid, a.datname, a.usename, a.application_name, host(a.client_addr) AS client_addr, a.state,
           a.wait_event_type, a.wait_event,
           extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
           extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
           extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
           left(a.query, %(query_length)s) AS query,
           coalesce(r.rolsuper, false) AS superuser,
           a.application_name LIKE 'korrigo.ops:%%' AS own,
           pg_blocking_pids(a.pid) AS blocked_by
      FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
     WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
), blocked AS (
    SELECT s.*, (SELECT coalesce(jsonb_agg(jsonb_build_object(
                     'pid', b.pid, 'usename', b.usename, 'application_name', b.application_name,
                     'state', b.state, 'xact_seconds', b.xact_seconds, 'state_seconds', b.state_seconds,
                     'query', b.query) ORDER BY b.pid), '[]')
                   FROM s b WHERE b.pid = ANY(s.blocked_by)) AS blockers
      FROM s WHERE cardinality(s.blocked_by) > 0
)
SELECT (SELECT count(*) FROM s) AS client_sessions,
       (SELECT count(*) FROM s WHERE state IS DISTINCT FROM 'idle') AS non_idle_total,
       (SELECT count(*) FROM s WHERE state = 'active') AS active_total,
       (SELECT count(*) FROM s WHERE state LIKE 'idle in transaction%%') AS idle_in_transaction_total,
       (SELECT count(*) FROM s WHERE state LIKE 'idle in transaction%%'
                                 AND state_seconds > %(idle_in_transaction)s) AS stale_idle_in_transaction,
       (SELECT count(*) FROM s WHERE state = 'active' AND query_seconds > %(long_running)s) AS long_running,
       (SELECT count(*) FROM blocked) AS blocked_total,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) - 'blocked_by' ORDER BY x.xact_seconds DESC NULLS LAST, x.pid), '[]')
          FROM (SELECT * FROM s WHERE state IS DISTINCT FROM 'idle'
                 ORDER BY xact_seconds DESC NULLS LAST, pid LIMIT %(limit)s) x) AS non_idle,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) ORDER BY x.query_seconds DESC NULLS LAST, x.pid), '[]')
          FROM (SELECT * FROM blocked ORDER BY query_seconds DESC NULLS LAST, pid LIMIT %(limit)s) x) AS blocked
"""

CONNECTIONS_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE backend_type = 'client backend') AS client,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved,
       (SELECT coalesce(jsonb_object_agg(st, n), '{}')
          FROM (SELECT coalesce(state, 'unknown') AS st, count(*) AS n FROM pg_stat_activity
                 WHERE backend_type = 'client backend' GROUP BY 1) x) AS by_state,
       (SELECT coalesce(jsonb_object_agg(db, n), '{}')
          FROM (SELECT coalesce(datname, '') AS db, count(*) AS n FROM pg_stat_activity
                 WHERE backend_type = 'client backend' GROUP BY 1) y) AS by_database
  FROM pg_stat_activity
"""

# Valid indexes whose first column is the one asked for (an index left invalid by a failed CONCURRENTLY does not count).
INDEX_SQL = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisvalid AS valid
  FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
 WHERE i.indrelid = to_regclass(%(table)s) AND a.attname = %(column)s
 ORDER BY 1
"""

STATEMENTS_INSTALLED_SQL = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed"

STATEMENTS_SQL = """
SELECT left(s.query, %(query_length)s) AS query, s.calls, s.total_exec_time, s.mean_exec_time, s.rows
  FROM pg_stat_statements s
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY s.total_exec_time DESC
 LIMIT %(limit)s
"""


def scrape(params):
    headers = {'Accept': 'text/plain'}
    if params['metrics_token']:
        headers['X-Metrics-Token'] = params['metrics_token']
    response = open_url(params['metrics_url'], headers=headers, timeout=params['metrics_timeout'],
                        validate_certs=params['validate_certs'])
    return prometheus.parse_metrics(response.read().decode('utf-8'))


def request_counts(samples):
    total = errors = 0.0
    for sample in samples:
        if sample['name'] == 'http_requests_total':
            total += sample['value']
            if str(sample['labels'].get('status', '')).startswith('5'):
                errors += sample['value']
    return total, errors


def gather_metrics(params):
    facts = {'url': params['metrics_url'], 'scraped': False, 'window_seconds': params['sample_seconds'] or None}
    try:
        samples = scrape(params)
        if params['sample_seconds'] > 0:
            time.sleep(params['sample_seconds'])
            samples = prometheus.subtract_samples(scrape(params), samples)
    except KorrigoError as err:
        if 'prometheus_client' in err.msg:
            raise
        facts['error'] = err.msg
        return facts
    except Exception as err:  # urllib's HTTPError/URLError/socket errors: the endpoint is a finding, not a failure
        facts['error'] = "cannot scrape %s: %s" % (params['metrics_url'], err)
        return facts
    endpoints = prometheus.latency_quantiles(samples)
    total, errors = request_counts(samples)
    threshold = params['latency_threshold_seconds']
    facts.update(
        scraped=True,
        endpoints=endpoints[:params['list_limit']],
        endpoints_total=len(endpoints),
        slow_endpoints=[dict((k, e[k]) for k in ('method', 'path', 'count', 'p50', 'p95', 'p99'))
                        for e in endpoints if (e.get('p95') or 0) > threshold],
        overall=(prometheus.latency_quantiles(samples, by=()) or [{}])[0],
        requests=total,
        errors_5xx=errors,
        error_rate=round(errors / total, 4) if total else 0.0,
        latency_threshold_seconds=threshold,
    )
    return facts


def plan_summary(plan):
    """Top node, whether any node scans the table sequentially, and the indexes used."""
    nodes, stack = [], [plan]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get('Plans') or [])
    return {
        'node': plan.get('Node Type'),
        'total_cost': plan.get('Total Cost'),
        'plan_rows': plan.get('Plan Rows'),
        'seq_scan': any(n.get('Node Type') == 'Seq Scan' for n in nodes),
        'indexes_used': sorted(set(n['Index Name'] for n in nodes if n.get('Index Name'))),
    }


def gather_indexes(cursor):
    found = []
    for spec in PLAYBOOK_INDEXES:
        cursor.execute(INDEX_SQL, spec)
        rows = cursor.fetchall()
        valid = [r for r in rows if r['valid']]
        create = sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} ({column})").format(
            name=sql.Identifier(spec['name']), table=sql.Identifier(spec['table']),
            column=sql.Identifier(spec['column'])).as_string(cursor)
        cursor.execute("EXPLAIN (FORMAT JSON) " + spec['hot_query'])  # fixed text from the allow-list above
        plan = cursor.fetchone()
        plan = list(plan.values())[0][0]['Plan']
        found.append({
            'table': spec['table'], 'column': spec['column'], 'present': bool(valid),
            'indexes': [r['name'] for r in valid], 'invalid_indexes': [r['name'] for r in rows if not r['valid']],
            'name': spec['name'],
            'create_statement': None if valid else create,
            'hot_query': spec['hot_query'],
            'plan': plan_summary(plan),
        })
    return found


def gather_statements(cursor, query_params):
    cursor.execute(STATEMENTS_INSTALLED_SQL)
    if not cursor.fetchone()['installed']:
        return {'installed': False}
    cursor.execute('SAVEPOINT korrigo_ops_statements')
    try:
        cursor.execute(STATEMENTS_SQL, query_params)
        return {'installed': True, 'readable': True, 'top': cursor.fetchall()}
    except psycopg2.Error as err:  # installed but not in shared_preload_libraries, or not allowed
        cursor.execute('ROLLBACK TO SAVEPOINT korrigo_ops_statements')
        return {'installed': True, 'readable': False, 'error': str(err).strip()}


def gather_database(params, subsets):
    query_params = {
        'query_length': params['query_length'], 'limit': params['list_limit'],
        'long_running': params['long_running_seconds'], 'idle_in_transaction': params['idle_in_transaction_seconds'],
    }
    facts = {}
    with read_only_session(params, 'korrigo.ops:korrigo_latency_facts',
                           'gathering latency facts failed') as (cursor, rules):
        facts['version'] = rules
        if 'sessions' in subsets:
            cursor.execute(SESSIONS_SQL, query_params)
            facts['sessions'] = cursor.fetchone()
        if 'connections' in subsets:
            cursor.execute(CONNECTIONS_SQL)
            row = cursor.fetchone()
            row['used_ratio'] = round(float(row['total']) / row['max_connections'], 4)
            facts['connections'] = row
        if 'indexes' in subsets:
            facts['indexes'] = gather_indexes(cursor)
            facts['missing_indexes'] = [i for i in facts['indexes'] if not i['present']]
        if 'statements' in subsets:
            facts['pg_stat_statements'] = gather_statements(cursor, query_params)
    return facts


def gather_facts(module):
    params = module.params
    for name in ('sample_seconds', 'long_running_seconds', 'idle_in_transaction_seconds', 'query_length',
                 'list_limit', 'metrics_timeout'):
        if params[name] < 0:
            raise KorrigoError("%s must not be negative (got %d)" % (name, params[name]))
    subsets = set(SUBSETS) if 'all' in params['gather_subset'] else set(params['gather_subset'])
    facts = {'thresholds': {
        'latency_threshold_seconds': params['latency_threshold_seconds'],
        'long_running_seconds': params['long_running_seconds'],
        'idle_in_transaction_seconds': params['idle_in_transaction_seconds'],
    }}
    if subsets - set(['metrics', 'backlog']):
        facts.update(gather_database(params, subsets))
    if 'metrics' in subsets and params['metrics_url']:
        facts['metrics'] = gather_metrics(params)
    if 'backlog' in subsets and params['broker_url']:
        try:
            facts['backlog'] = {'queue': params['queue'], 'length': queue_length(params['broker_url'], params['queue'])}
        except KorrigoError as err:
            if 'library is required' in err.msg:
                raise
            facts['backlog'] = {'queue': params['queue'], 'length': None, 'error': err.msg}
    return {'changed': False, 'ansible_facts': {'korrigo_latency': jsonable(facts)}}


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(
        gather_subset=dict(type='list', elements='str', default=['all'], choices=['all'] + list(SUBSETS)),
        metrics_url=dict(type='str', default=''),
        metrics_token=dict(type='str', default='', no_log=True),
        metrics_timeout=dict(type='int', default=10),
        validate_certs=dict(type='bool', default=True),
        sample_seconds=dict(type='int', default=0),
        latency_threshold_seconds=dict(type='float', default=5.0),
        long_running_seconds=dict(type='int', default=300),
        idle_in_transaction_seconds=dict(type='int', default=60),
        query_length=dict(type='int', default=200),
        list_limit=dict(type='int', default=50),
        broker_url=dict(type='str', default='', no_log=True),
        queue=dict(type='str', default='celery'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: gather_facts(module))


if __name__ == '__main__':
    main()
