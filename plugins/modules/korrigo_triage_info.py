#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: korrigo_triage_info
short_description: Everything the triage reads, in one process - compose services, latency, workflow facts, the log
version_added: 0.3.0
description:
  - Reads the four sources of the triage (incident playbook, appendix A) at once, each on its own thread, and
    returns each as its own module returns it. A source that fails is returned failed, with its message; the others
    still answer, and the module itself fails only on invalid options.
  - C(docker) - the containers of the compose project (running or not), as M(community.docker.docker_host_info)
    returns them with C(verbose_output), read from the Docker Engine API with the standard library.
  - C(latency) - M(korrigo.ops.korrigo_latency_facts) (O(latency_subset)).
  - C(workflow) - M(korrigo.ops.korrigo_facts) (O(workflow_subset); its C(audit) subset is the audit-trail check).
  - C(log) - M(korrigo.ops.korrigo_log_facts) on O(log_path).
  - One module process instead of four is what lets a fleet's triage scale with its schools; each source's options
    not listed here keep that module's defaults.
  - Read-only; no fact is set (the result is registered), so the facts are not copied for every later task.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  sources:
    description:
      - Sources to read.
    type: list
    elements: str
    default: [ docker, latency, workflow, log ]
    choices: [ docker, latency, workflow, log ]
  compose_project:
    description:
      - The compose project of the deployment (label C(com.docker.compose.project) of its containers).
    type: str
    default: korrigo
  docker_host:
    description:
      - Docker daemon URL (C(unix://), C(tcp://) or C(https://)); default from the environment (C(DOCKER_HOST),
        C(DOCKER_TLS_VERIFY), C(DOCKER_CERT_PATH)) or the local socket.
    type: str
  docker_timeout:
    description:
      - Seconds to wait for the Docker daemon.
    type: int
    default: 10
  latency_subset:
    description:
      - M(korrigo.ops.korrigo_latency_facts)' O(korrigo.ops.korrigo_latency_facts#module:gather_subset).
    type: list
    elements: str
    default: [ metrics, sessions, connections, backlog ]
    choices: [ all, metrics, sessions, connections, indexes, statements, backlog ]
  workflow_subset:
    description:
      - M(korrigo.ops.korrigo_facts)' O(korrigo.ops.korrigo_facts#module:gather_subset).
    type: list
    elements: str
    default: [ copies, stuck_imports, finalizations, locks, audit ]
    choices: [ all, copies, stuck_imports, finalizations, locks, annotations, version, audit ]
  stuck_after_minutes:
    description:
      - A copy in C(STAGING) for longer than this is a stuck import.
    type: int
    default: 5
  list_limit:
    description:
      - Most copies and locks the workflow facts list; counts always cover everything.
    type: int
    default: 200
  workflow_statement_timeout_ms:
    description:
      - Statement timeout of the workflow reads (the audit check reads every grading event); default
        O(statement_timeout_ms).
    type: int
  log_path:
    description:
      - Korrigo's JSON log on the managed host. Required when O(sources) has C(log).
    type: path
  log_window_minutes:
    description:
      - Only log entries of the last this many minutes count.
    type: int
    default: 60
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.metrics
  - korrigo.ops.korrigo.attributes_read_only
notes:
  - Opens up to three database connections at once (the latency session, the workflow session and the audit
    check's, which falls back to the workflow session when refused).
requirements:
  - psycopg2, prometheus_client (with O(metrics_url)) and redis (with O(broker_url)) on the host running the module.
seealso:
  - module: korrigo.ops.korrigo_facts
  - module: korrigo.ops.korrigo_latency_facts
  - module: korrigo.ops.korrigo_log_facts
  - module: community.docker.docker_host_info
'''

EXAMPLES = r'''
- name: Read what the triage classifies
  korrigo.ops.korrigo_triage_info:
    login_host: 127.0.0.1
    login_user: korrigo_readonly
    login_password: "{{ korrigo_readonly_password }}"
    metrics_url: http://127.0.0.1:8088/metrics
    broker_url: redis://127.0.0.1:6385/0
    log_path: /opt/korrigo/backend/logs/django.log
  register: triage_read

- name: Classify it (the filters read each source as its own module returns it)
  ansible.builtin.set_fact:
    verdict: "{{ triage_read.sources | korrigo.ops.triage_facts | korrigo.ops.triage_verdict }}"
'''

RETURN = r'''
sources:
  description:
    - Each source read, as its own module returns it; a source that failed has C(failed) and C(msg) instead.
    - C(audit) is the workflow facts' C(audit) subset (or the workflow's failure), for the triage filters.
  returned: always
  type: dict
  contains:
    docker:
      description: C(containers), the Engine API's list (docker_host_info's C(containers)).
      type: dict
      returned: when O(sources) has C(docker)
    latency:
      description: C(ansible_facts.korrigo_latency) (korrigo_latency_facts').
      type: dict
      returned: when O(sources) has C(latency)
    workflow:
      description: C(ansible_facts.korrigo) (korrigo_facts').
      type: dict
      returned: when O(sources) has C(workflow)
    audit:
      description: The audit-trail check (C(gap_counts), ...), or C(msg).
      type: dict
      returned: when O(sources) has C(workflow)
    log:
      description: C(ansible_facts.korrigo_log) (korrigo_log_facts').
      type: dict
      returned: when O(sources) has C(log)
  sample:
    docker: {containers: [{Names: [/korrigo_db_1], State: running, Status: Up 2 hours, Labels: {}}]}
    log: {failed: true, msg: "cannot read Korrigo's log /opt/korrigo/backend/logs/django.log: permission denied"}
seconds:
  description: Wall time of each source's read.
  returned: always
  type: dict
  sample: {docker: 0.01, latency: 0.12, workflow: 0.43, log: 0.05}
'''

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.database import korrigo_common_argument_spec
from ansible_collections.korrigo.ops.plugins.module_utils.docker_api import compose_containers
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.facts import FACTS_ARGUMENT_SPEC, korrigo_facts
from ansible_collections.korrigo.ops.plugins.module_utils.latency import LATENCY_ARGUMENT_SPEC, latency_facts
from ansible_collections.korrigo.ops.plugins.module_utils.logs import LOG_ARGUMENT_SPEC, log_facts

SOURCES = ('docker', 'latency', 'workflow', 'log')
APPLICATION_NAME = 'korrigo.ops:korrigo_triage_info'
CONNECTION_OPTIONS = tuple(korrigo_common_argument_spec())
# korrigo_latency_facts' options this module takes as they are (same names, types, defaults, no_log).
LATENCY_OPTIONS = ('metrics_url', 'metrics_token', 'validate_certs', 'broker_url', 'latency_threshold_seconds',
                   'long_running_seconds', 'idle_in_transaction_seconds')


def defaults(spec):
    return dict((name, list(option['default']) if isinstance(option.get('default'), list) else option.get('default'))
                for name, option in spec.items())


def source_params(params):
    """Each source's own module parameters: its defaults, then what this module was given."""
    connection = dict((name, params[name]) for name in CONNECTION_OPTIONS)
    latency = dict(defaults(LATENCY_ARGUMENT_SPEC), **connection)
    latency.update((name, params[name]) for name in LATENCY_OPTIONS)
    latency['gather_subset'] = params['latency_subset']
    workflow = dict(defaults(FACTS_ARGUMENT_SPEC), **connection)
    workflow.update(gather_subset=params['workflow_subset'], stuck_after_minutes=params['stuck_after_minutes'],
                    list_limit=params['list_limit'])
    if params['workflow_statement_timeout_ms'] is not None:
        workflow['statement_timeout_ms'] = params['workflow_statement_timeout_ms']
    log = dict(defaults(LOG_ARGUMENT_SPEC), path=params['log_path'], window_minutes=params['log_window_minutes'])
    return {'latency': latency, 'workflow': workflow, 'log': log}


def readers(params):
    """{source: a function returning what that source's module returns}, every option checked first."""
    problems = ["%s must not be negative (got %d)" % (name, params[name]) for name in (
        'docker_timeout', 'log_window_minutes', 'stuck_after_minutes', 'list_limit', 'long_running_seconds',
        'idle_in_transaction_seconds') if params[name] < 0]
    if not params['sources']:
        problems.append("sources is empty: name at least one of %s" % ', '.join(SOURCES))
    if 'log' in params['sources'] and not params['log_path']:
        problems.append("log_path is required to read the log (or leave log out of sources)")
    if problems:
        raise KorrigoError('; '.join(problems))
    own = source_params(params)
    every = {
        'docker': lambda: {'containers': compose_containers(params['compose_project'], params['docker_host'],
                                                            params['docker_timeout'])},
        'latency': lambda: {'ansible_facts': {'korrigo_latency': latency_facts(own['latency'], APPLICATION_NAME)}},
        'workflow': lambda: {'ansible_facts': {'korrigo': korrigo_facts(own['workflow'], APPLICATION_NAME)}},
        'log': lambda: {'ansible_facts': {'korrigo_log': log_facts(own['log'])}},
    }
    return dict((name, every[name]) for name in SOURCES if name in params['sources'])


def timed(read):
    started = time.time()
    try:
        answer = read()
    except KorrigoError as err:
        answer = {'failed': True, 'msg': err.msg}
    except Exception as err:  # a source's failure is a finding of the triage, never the end of it
        answer = {'failed': True, 'msg': '%s: %s' % (type(err).__name__, err)}
    return answer, round(time.time() - started, 3)


def triage_info(params):
    reads = readers(params)
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        futures = dict((name, pool.submit(timed, read)) for name, read in reads.items())
    answers = dict((name, future.result()) for name, future in futures.items())
    sources = dict((name, answer) for name, (answer, _s) in answers.items())
    if 'workflow' in sources:
        workflow = sources['workflow']
        sources['audit'] = (workflow['ansible_facts']['korrigo'].get('audit') or {}) if 'ansible_facts' in workflow \
            else workflow
    return {'changed': False, 'sources': sources, 'seconds': dict((name, s) for name, (_a, s) in answers.items())}


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(
        sources=dict(type='list', elements='str', default=list(SOURCES), choices=list(SOURCES)),
        compose_project=dict(type='str', default='korrigo'),
        docker_host=dict(type='str'),
        docker_timeout=dict(type='int', default=10),
        latency_subset=dict(type='list', elements='str', default=['metrics', 'sessions', 'connections', 'backlog'],
                            choices=LATENCY_ARGUMENT_SPEC['gather_subset']['choices']),
        workflow_subset=dict(type='list', elements='str', default=['copies', 'stuck_imports', 'finalizations', 'locks',
                                                                   'audit'],
                             choices=FACTS_ARGUMENT_SPEC['gather_subset']['choices']),
        stuck_after_minutes=FACTS_ARGUMENT_SPEC['stuck_after_minutes'],
        list_limit=FACTS_ARGUMENT_SPEC['list_limit'],
        workflow_statement_timeout_ms=dict(type='int'),
        log_path=dict(type='path'),
        log_window_minutes=dict(type='int', default=LOG_ARGUMENT_SPEC['window_minutes']['default']),
    )
    argument_spec.update((name, LATENCY_ARGUMENT_SPEC[name]) for name in LATENCY_OPTIONS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: triage_info(module.params))


if __name__ == '__main__':
    main()
