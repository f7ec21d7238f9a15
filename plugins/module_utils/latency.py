# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario 4's diagnosis (korrigo_latency_facts, and triage's korrigo_triage_info): Prometheus, PostgreSQL
sessions, connections, indexes and statements, the Celery backlog."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.urls import open_url

from ansible_collections.korrigo.ops.plugins.module_utils.broker import queue_length
from ansible_collections.korrigo.ops.plugins.module_utils.database import jsonable, psycopg2, read_only_session, sql
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils import prometheus

SUBSETS = ('metrics', 'sessions', 'connections', 'indexes', 'statements', 'backlog')

# korrigo_latency_facts' own options (beside the connection's); korrigo_triage_info takes their defaults.
LATENCY_ARGUMENT_SPEC = dict(
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


def gather_database(params, subsets, application_name):
    query_params = {
        'query_length': params['query_length'], 'limit': params['list_limit'],
        'long_running': params['long_running_seconds'], 'idle_in_transaction': params['idle_in_transaction_seconds'],
    }
    facts = {}
    with read_only_session(params, application_name, 'gathering latency facts failed') as (cursor, rules):
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


def latency_facts(params, application_name='korrigo.ops:korrigo_latency_facts'):
    """ansible_facts.korrigo_latency from the connection's parameters and LATENCY_ARGUMENT_SPEC's."""
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
        facts.update(gather_database(params, subsets, application_name))
    if 'metrics' in subsets and params['metrics_url']:
        facts['metrics'] = gather_metrics(params)
    if 'backlog' in subsets and params['broker_url']:
        try:
            facts['backlog'] = {'queue': params['queue'], 'length': queue_length(params['broker_url'], params['queue'])}
        except KorrigoError as err:
            if 'library is required' in err.msg:
                raise
            facts['backlog'] = {'queue': params['queue'], 'length': None, 'error': err.msg}
    return jsonable(facts)
