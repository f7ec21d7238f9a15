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
  metrics_timeout:
    description:
      - Seconds to wait for the metrics endpoint.
    type: int
    default: 10
  sample_seconds:
    description:
      - When above 0, scrape twice this many seconds apart and compute the quantiles on the difference
        (the requests of that window). 0 uses the counters as scraped (every request since the backend started).
    type: int
    default: 0
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
  queue:
    description:
      - The Celery queue whose length is the backlog (Korrigo only uses C(celery)).
    type: str
    default: celery
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.metrics
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.database import korrigo_common_argument_spec
from ansible_collections.korrigo.ops.plugins.module_utils.errors import run_module
from ansible_collections.korrigo.ops.plugins.module_utils.latency import LATENCY_ARGUMENT_SPEC, latency_facts


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(LATENCY_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: {'changed': False, 'ansible_facts': {'korrigo_latency': latency_facts(module.params)}})


if __name__ == '__main__':
    main()
