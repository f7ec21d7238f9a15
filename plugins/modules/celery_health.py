#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: celery_health
short_description: Ask Korrigo's Celery workers whether they answer, and start or restart them
version_added: 0.1.0
description:
  - Pings the workers through the broker (Celery's remote control, as C(celery inspect ping) does), asks each one
    what it runs (C(active)) and holds (C(reserved)), and reads the backlog (C(LLEN celery)). Reports per worker
    and overall (RV(healthy) - at least one worker answers). Diagnosis needs only the broker (Redis) - no
    Docker daemon, no systemd - so it runs from any controller (AWX included) that reaches Redis.
  - With O(state=started), starts the worker when none answers and it is not running.
    With O(state=restarted), restarts it when no worker answers, or always with O(restart_policy=always).
    Then waits until a worker answers, up to O(wait_timeout) seconds, and fails saying what it saw otherwise.
  - The worker's manager (O(manager)) is contacted only then - when it must act - never to diagnose. V(compose)
    acts on the compose service's containers, found by their C(com.docker.compose.project) and
    C(com.docker.compose.service) labels (Compose v1 and v2 alike, whatever the container is called); V(systemd) on a
    systemd unit (O(systemd_unit)); V(none) changes nothing and returns the step to do by hand in RV(manual_action)
    (C(changed=false), not failed).
  - When the manager must act but cannot be reached (no Docker socket, Docker SDK missing, C(systemctl) missing or
    the unit unknown), the module fails with a message naming the manager and the manual step; nothing is changed.
  - Before acting, the container or unit is confirmed to be the worker of B(this) broker, else the module refuses
    (nothing changed). The worker's broker URL is read from its command line (C(-b)/C(--broker)) or environment
    (C(CELERY_BROKER_URL), then C(BROKER_URL); a container's C(Config.Env), a unit's C(Environment=) and
    C(EnvironmentFile=) as C(systemctl show) reports them) and must equal O(worker_broker_url) once normalised -
    scheme, host (C(localhost), C(127.0.0.0/8) and C(::1) are one loopback), port (default 6379) and database
    (default 0); credentials and other options are ignored.
  - A loopback broker URL designates the module host's Redis only when the worker shares the module host's
    network - a systemd unit does, a container does with C(network_mode=host) on a local Docker daemon. For a
    container with its own network (or on a remote daemon), that match is accepted only when O(worker_broker_url)
    is set explicitly, or when the container's Celery node name (C(-n)/C(--hostname), default C(celery@%h) with
    the container's host name) answered through the broker. A worker whose broker URL cannot be read is accepted
    only on that node-name match. A compose project that merely has the same name on the Docker daemon is
    never touched.
  - Starting or restarting goes through the guard of every remediation, and only then is Korrigo's database needed
    (diagnosis never connects to it; the roles pass the connection options through the C(korrigo.ops.korrigo)
    action group) - once the worker is confirmed and an action is due, one transaction takes the advisory lock of
    C(celery_health) (a concurrent run returns C(skipped_concurrent_run); with O(restart_policy=if_unhealthy) the
    workers are pinged again under the lock, so a worker another run just restarted is not restarted twice),
    looks up O(remediation_user), checks the action against O(max_changes), acts, waits, and writes one
    C(core_auditlog) row (action C(korrigo_ops.celery_health.restart) or C(korrigo_ops.celery_health.start),
    resource C(CeleryWorker) with the compose service or systemd unit; metadata with the containers or unit and how
    they were confirmed, the state before, the remediation and who ran it), committed after the action - also when
    no worker answers afterwards (the restart happened).
  - When the database cannot be reached (or O(remediation_user) does not exist) as an action is due, the module
    fails before acting, saying so; nothing is started or restarted.
  - When the broker does not answer, nothing is started or restarted (a worker cannot be reached or confirmed
    without it) and the module fails with O(state) set, or reports RV(broker.reachable=false) without it.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  broker_url:
    description:
      - Korrigo's C(CELERY_BROKER_URL) as the host running this module reaches it, for example
        C(redis://127.0.0.1:6379/0). It may carry a password, so it is never logged.
    type: str
    required: true
  worker_broker_url:
    description:
      - The broker URL as the worker sees it, compared with the worker's own C(CELERY_BROKER_URL) before acting on
        it. Set it when the worker reaches Redis by another name, for example C(redis://redis:6379/0) with a compose
        service name, while O(broker_url) is C(redis://127.0.0.1:6379/0) on the host.
      - Default - O(broker_url) (then a loopback URL only matches a worker sharing this host's network).
    type: str
  queue:
    description:
      - Queue whose backlog is measured (Korrigo uses the default queue only).
    type: str
    default: celery
  state:
    description:
      - V(started) - make sure a worker runs; V(restarted) - restart it (see O(restart_policy)).
      - Not set - only report (the manager is never contacted).
    type: str
    choices: [ started, restarted ]
  restart_policy:
    description:
      - With O(state=restarted) - V(if_unhealthy) restarts only when no worker answers (no change otherwise);
        V(always) restarts every time (always a change).
    type: str
    default: if_unhealthy
    choices: [ if_unhealthy, always ]
  manager:
    description:
      - How the worker is acted on when it must be - V(compose) (its O(compose_project)/O(compose_service)
        containers through the Docker daemon), V(systemd) (O(systemd_unit) through C(systemctl) on the host running
        this module) or V(none) (nothing is acted on; RV(manual_action) says what to do by hand).
      - Default - V(compose) when O(compose_project) is set, V(systemd) when O(systemd_unit) is set; with neither,
        O(state) cannot be set.
    type: str
    choices: [ compose, systemd, none ]
  compose_project:
    description:
      - docker-compose project of Korrigo; the worker is its O(compose_service) container (O(manager=compose)).
    type: str
  compose_service:
    description:
      - Compose service of the Celery worker.
    type: str
    default: celery
  systemd_unit:
    description:
      - systemd unit of the worker (O(manager=systemd)).
    type: str
  docker_host:
    description:
      - Docker daemon URL (O(manager=compose)); default from the environment (C(DOCKER_HOST)) or the local socket.
    type: str
  ping_timeout:
    description:
      - Seconds to wait for the workers' replies to one ping (a broadcast, so every ping waits this long).
        The workers' main process answers even while every child is busy; Celery's own C(inspect) waits 1 s.
    type: float
    default: 1.0
  wait_timeout:
    description:
      - Seconds to wait for a worker to answer after starting or restarting it.
    type: int
    default: 90
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
attributes:
  check_mode:
    description:
      - Diagnoses as usual and, when a start or restart is due, contacts the manager read-only (state and identity
        of the worker, so a refusal shows in the dry run) and the database (advisory lock, actor) but does not act,
        does not wait and writes no audit row; reports the action that would be taken.
    support: full
  diff_mode:
    description:
      - Shows the worker's running state and the number of answering workers before and after an action; not the
        containers' or unit's configuration.
    support: partial
  idempotent:
    description:
      - With O(restart_policy=if_unhealthy), a second run against a healthy worker changes nothing;
        O(restart_policy=always) restarts every run.
    support: partial
notes:
  - C(diff_mode) shows the worker's running state and answering workers before and after.
requirements:
  - celery and redis Python libraries; the Docker SDK (C(docker)) only when O(manager=compose) must act; psycopg2
    only when a start or restart is due (its audit row).
seealso:
  - module: korrigo.ops.celery_task
'''

EXAMPLES = r'''
- name: How are the workers? (the broker only, from any controller)
  korrigo.ops.celery_health:
    broker_url: redis://127.0.0.1:6385/0
  register: celery

- name: Start the worker if it is down, wait until it answers
  korrigo.ops.celery_health:
    broker_url: "{{ korrigo_broker_url }}"
    manager: compose
    compose_project: korrigo
    state: started
    database_url: "{{ korrigo_database_url }}"  # the audit row of the start

- name: The worker runs in compose's own network and reaches Redis as "redis"
  korrigo.ops.celery_health:
    broker_url: redis://127.0.0.1:6385/0
    worker_broker_url: redis://redis:6379/0
    manager: compose
    compose_project: korrigo
    state: restarted

- name: Restart a worker that runs but no longer answers
  korrigo.ops.celery_health:
    broker_url: "{{ korrigo_broker_url }}"
    manager: systemd
    systemd_unit: korrigo-celery.service
    state: restarted
    restart_policy: if_unhealthy

- name: From AWX (no Docker, no systemd here) - say what to restart, change nothing
  korrigo.ops.celery_health:
    broker_url: "{{ korrigo_broker_url }}"
    manager: none
    state: restarted
  register: celery

- name: Tell a human
  ansible.builtin.debug:
    msg: "{{ celery.manual_action }}"
  when: celery.manual_action
'''

RETURN = r'''
healthy:
  description: True when at least one worker answers the ping (after the action, when there was one).
  returned: always
  type: bool
workers:
  description: One entry per answering worker.
  returned: always
  type: list
  elements: dict
  sample:
    - name: celery@korrigo-1
      ok: true
      active: 1
      reserved: 0
      active_tasks: [grading.tasks.async_import_pdf]
workers_answering:
  description: Number of workers that answered.
  returned: always
  type: int
active:
  description: Tasks running on all workers.
  returned: always
  type: int
reserved:
  description: Tasks held (prefetched) by all workers.
  returned: always
  type: int
queue_length:
  description: Messages waiting in the queue (C(LLEN)); null when the broker does not answer.
  returned: always
  type: int
broker:
  description: Whether the broker answered, and the error when not.
  returned: always
  type: dict
  sample: {reachable: true, error: null}
  contains:
    reachable:
      description: True when the broker answered.
      returned: always
      type: bool
    error:
      description: Why the broker did not answer; null when it did.
      returned: always
      type: str
manager:
  description: The manager in effect (V(compose), V(systemd), V(none)); null when only reporting without one.
  returned: always
  type: str
manual_action:
  description:
    - What to do by hand when a start or restart is due and O(manager=none) (also in the failure result when the
      manager cannot be reached or the worker is refused); null when nothing is due.
  returned: always
  type: str
  sample: "restart the Celery worker of broker redis://127.0.0.1:6385 db 0: no worker answers"
service:
  description:
    - The worker's containers (C(name), C(id), C(status)) or systemd unit (C(unit), C(active)) before any action.
    - Only when the manager was contacted, that is when it had to act.
  returned: when the manager was contacted
  type: dict
identity:
  description: How each container or unit acted on was confirmed to be this broker's worker.
  returned: when the manager was contacted to act
  type: list
  elements: dict
  sample: [{name: korrigo_celery_1, confirmed_by: "broker redis://127.0.0.1:56379 db 0 (environment CELERY_BROKER_URL)"}]
action:
  description: What was (or would be in check mode) done - C(none), C(started) or C(restarted).
  returned: always
  type: str
waited_seconds:
  description: Seconds waited for a worker to answer after the action.
  returned: always
  type: float
audit_rows:
  description: Number of C(core_auditlog) rows written (1 after a start or restart, 0 otherwise and in check mode).
  returned: always
  type: int
'''

import sys
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.broker import broker_client, celery_app, redis
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    jsonable, korrigo_common_argument_spec, korrigo_guard_argument_spec,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.side_effects import SideEffects
from ansible_collections.korrigo.ops.plugins.module_utils.worker import MANAGERS, redact_url, worker_manager


def broker_state(url, queue):
    """(reachable, error, queue length) from one PING and one LLEN."""
    client = broker_client(url, timeout=3.0)
    try:
        client.ping()
        return True, None, int(client.llen(queue))
    except redis.RedisError as err:
        return False, "Celery broker unreachable at %s: %s" % (url.split('@')[-1], err), None
    finally:
        client.connection_pool.disconnect()


def inspect_workers(url, timeout):
    """Workers answering a ping, with what each runs and holds (Celery's remote control over the broker)."""
    app = celery_app(url)
    try:
        inspect = app.control.inspect(timeout=timeout)
        replies = inspect.ping() or {}
        names = sorted(replies)
        active, reserved = {}, {}
        if names:
            targeted = app.control.inspect(timeout=timeout, destination=names)
            active = targeted.active() or {}
            reserved = targeted.reserved() or {}
    except Exception as err:  # kombu raises transport-specific errors
        raise KorrigoError("asking the Celery workers through %s failed: %s" % (url.split('@')[-1], err))
    finally:
        app.close()
    workers = []
    for name in names:
        running = active.get(name) or []
        workers.append({
            'name': name,
            'ok': (replies.get(name) or {}).get('ok') == 'pong',
            'active': len(running),
            'reserved': len(reserved.get(name) or []),
            'active_tasks': sorted(task.get('name') or '?' for task in running),
        })
    return workers


def decide(state, policy, healthy, running):
    """The action state/restart_policy ask for, given what was seen."""
    if state == 'started':
        return 'started' if not healthy and not running else 'none'
    if state == 'restarted':
        return 'restarted' if policy == 'always' or not healthy else 'none'
    return 'none'


def must_contact_manager(state, policy, healthy):
    """Whether the manager is needed at all: only when an action may be due. Diagnosis never needs it."""
    if state == 'restarted':
        return policy == 'always' or not healthy
    if state == 'started':
        return not healthy  # is it stopped (start it) or running but silent (wait, then say so)?
    return False


def effective_manager(params):
    """The manager the options name (explicit, or implied by compose_project / systemd_unit), validated."""
    manager = params.get('manager')
    project, unit, state = params.get('compose_project'), params.get('systemd_unit'), params.get('state')
    if manager is None:
        if project and unit:
            raise KorrigoError("set compose_project or systemd_unit, not both (or choose with manager)")
        manager = 'compose' if project else 'systemd' if unit else None
    if manager == 'compose' and not project:
        raise KorrigoError("manager=compose needs compose_project (the worker's compose project)")
    if manager == 'systemd' and not unit:
        raise KorrigoError("manager=systemd needs systemd_unit (the worker's unit)")
    if state and manager is None:
        raise KorrigoError("state=%s needs compose_project (manager=compose), systemd_unit (manager=systemd) or "
                           "manager=none (report what to do by hand)" % state)
    return manager


def manual_step(params, manager, action, healthy):
    """The sentence a person acts on when the module does not (manager=none, or the manager failed)."""
    verb = 'start' if action == 'started' else 'restart'
    reason = 'no worker answers' if not healthy else 'restart_policy=always asks for a restart'
    how = ''
    if params.get('compose_project') and manager in ('compose', 'none'):
        how = ' (compose service %s/%s, e.g. docker compose -p %s %s %s)' % (
            params['compose_project'], params['compose_service'], params['compose_project'], verb,
            params['compose_service'])
    elif params.get('systemd_unit') and manager in ('systemd', 'none'):
        how = ' (systemctl %s %s)' % (verb, params['systemd_unit'])
    return "%s the Celery worker of broker %s: %s%s" % (verb, redact_url(params['broker_url']), reason, how)


def wait_for_worker(params, deadline):
    workers = []
    while True:
        reachable, _error, _length = broker_state(params['broker_url'], params['queue'])
        if reachable:
            workers = inspect_workers(params['broker_url'], params['ping_timeout'])
            if workers:
                return workers
        if time.time() >= deadline:
            return workers
        time.sleep(1)


def summary(workers, reachable, error, queue_length):
    return {
        'healthy': bool(workers),
        'workers': workers,
        'workers_answering': len(workers),
        'active': sum(w['active'] for w in workers),
        'reserved': sum(w['reserved'] for w in workers),
        'queue_length': queue_length,
        'broker': {'reachable': reachable, 'error': error},
    }


def worker_resource(params, manager):
    """The audit row's resource_id: the compose service (project/service) or the systemd unit."""
    if manager == 'systemd':
        return params['systemd_unit']
    return '%s/%s' % (params['compose_project'], params['compose_service'])


def open_guard(module, step):
    """The guard of a start or restart (advisory lock, actor, max_changes); a database that cannot be reached
    fails before anything is acted on."""
    guard = SideEffects(module.params, 'celery_health', module.check_mode, tables=('core_auditlog', 'auth_user'))
    try:
        guard.__enter__()
    except KorrigoError as err:
        raise KorrigoError("a %s of the worker is due but its audit row and advisory lock need Korrigo's database "
                           "(connection options login_*/database_url, remediation_user): %s" % (step, err.msg),
                           **err.details)
    return guard


def act_through_manager(module, manager, workers, intended, seen):
    """Contact the manager, confirm the worker is ours, take the guard, act (not in check mode) and wait. Returns
    (action, description, identity, workers, waited, running, guard result). Every failure before acting says
    nothing was changed."""
    params = module.params
    worker_url = params['worker_broker_url'] or params['broker_url']
    explicit = params['worker_broker_url'] is not None
    healthy = bool(workers)
    step = manual_step(params, manager, intended, healthy)
    service = None
    guard = None
    description, identity = None, []
    try:
        try:
            service = worker_manager(manager, params, module.run_command, module.get_bin_path)
            description = service.describe()
            running = service.running(description)
            action = decide(params['state'], params['restart_policy'], healthy, running)
            if action != 'none':
                identity = [{'name': name, 'confirmed_by': how} for name, how in
                            service.confirm(worker_url, explicit, [w['name'] for w in workers])]
                guard = open_guard(module, 'start' if action == 'started' else 'restart')
                if not healthy and params['restart_policy'] == 'if_unhealthy':
                    # Under the lock: another run may have brought the worker back since it was pinged.
                    workers = inspect_workers(params['broker_url'], params['ping_timeout'])
                    if workers:
                        action = decide(params['state'], params['restart_policy'], True, running)
                guard.plan(1 if action != 'none' else 0)
                if action != 'none':
                    guard.perform(
                        'korrigo_ops.celery_health.%s' % ('start' if action == 'started' else 'restart'),
                        'CeleryWorker', worker_resource(params, manager),
                        lambda: service.act(action) or {'action': action},
                        before={'running': running, 'workers_answering': len(workers),
                                'service': jsonable(description)},
                        metadata={'manager': manager, 'identity': identity, 'reason': step,
                                  'restart_policy': params['restart_policy'], 'state': params['state']})
        except KorrigoError as err:
            details = dict(err.details, manager=manager, manual_action=step, action='none', changed=False, **seen)
            if description is not None:
                details['service'] = description
            raise KorrigoError("manager=%s: %s; nothing was changed. Manual step: %s (or set manager=none to only "
                               "report it)" % (manager, err.msg, step), **details)
        waited = 0.0
        if not module.check_mode and (action != 'none' or not workers):
            started = time.time()
            workers = wait_for_worker(params, started + params['wait_timeout'])
            waited = round(time.time() - started, 1)
            if not workers:
                after = service.describe()
                hint = ('the worker runs but does not answer: use state=restarted'
                        if action == 'none' and service.running(after) else 'see its logs')
                raise KorrigoError("no Celery worker answered within %ss after %s (%s)" % (
                    params['wait_timeout'], 'starting it' if action != 'none' else 'checking', hint),
                    service=after, logs=service.logs(), action=action, manager=manager, changed=action != 'none')
        if guard is not None:
            guard.__exit__(None, None, None)
            result, guard = guard.result(), None
        else:
            result = {'audit_rows': 0, 'audit_actions': []}
        return action, description, identity, workers, waited, running, result
    finally:
        try:
            if guard is not None:  # failing: the restart, when it happened, is recorded all the same
                guard.__exit__(*sys.exc_info())
        finally:
            if service is not None:
                service.close()


def health(module):
    params = module.params
    state = params['state']
    manager = effective_manager(params)
    if params['ping_timeout'] <= 0 or params['wait_timeout'] < 0:
        raise KorrigoError("ping_timeout must be positive and wait_timeout not negative")

    # Diagnosis: the broker only.
    reachable, error, queue_length = broker_state(params['broker_url'], params['queue'])
    workers = inspect_workers(params['broker_url'], params['ping_timeout']) if reachable else []
    if state and not reachable:
        raise KorrigoError("%s: the worker cannot be reached or confirmed without its broker, so nothing was "
                           "started or restarted; bring Redis back first" % error,
                           manager=manager, **summary(workers, reachable, error, queue_length))

    action, description, identity, manual, waited, running = 'none', None, None, None, 0.0, None
    audit = {'audit_rows': 0, 'audit_actions': []}
    answering_before = len(workers)
    if must_contact_manager(state, params['restart_policy'], bool(workers)):
        intended = 'started' if state == 'started' else 'restarted'
        if manager == 'none':
            manual = manual_step(params, manager, intended, bool(workers))
        else:
            action, description, identity, workers, waited, running, audit = act_through_manager(
                module, manager, workers, intended, summary(workers, reachable, error, queue_length))
            if not module.check_mode and (action != 'none' or waited):
                reachable, error, queue_length = broker_state(params['broker_url'], params['queue'])

    result = dict(summary(workers, reachable, error, queue_length), changed=action != 'none', action=action,
                  manager=manager, manual_action=manual, waited_seconds=waited, check_mode=module.check_mode,
                  **audit)
    if description is not None:
        result['service'] = description
        result['identity'] = identity
    if module._diff and action != 'none':
        result['diff'] = {
            'before': {'running': running, 'workers_answering': answering_before},
            'after': {'running': True, 'workers_answering': len(workers), 'action': action},
        }
    return result


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        broker_url=dict(type='str', required=True, no_log=True),
        worker_broker_url=dict(type='str', no_log=True),
        queue=dict(type='str', default='celery'),
        state=dict(type='str', choices=['started', 'restarted']),
        restart_policy=dict(type='str', default='if_unhealthy', choices=['if_unhealthy', 'always']),
        manager=dict(type='str', choices=list(MANAGERS)),
        compose_project=dict(type='str'),
        compose_service=dict(type='str', default='celery'),
        systemd_unit=dict(type='str'),
        docker_host=dict(type='str'),
        ping_timeout=dict(type='float', default=1.0),
        wait_timeout=dict(type='int', default=90),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: health(module))


if __name__ == '__main__':
    main()
