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
    and overall (RV(healthy) - at least one worker answers).
  - With O(state=started), starts the worker when none answers and its container (or systemd unit) is not running.
    With O(state=restarted), restarts it when no worker answers, or always with O(restart_policy=always).
    Then waits until a worker answers, up to O(wait_timeout) seconds, and fails saying what it saw otherwise.
  - The worker is the compose service's container, found by its C(com.docker.compose.project) and
    C(com.docker.compose.service) labels (Compose v1 and v2 alike, whatever the container is called), or a
    systemd unit (O(systemd_unit)).
  - When the broker does not answer, nothing is started or restarted (a worker cannot be reached or confirmed
    without it) and the module fails with O(state) set, or reports RV(broker.reachable=false) without it.
  - Check mode reports what would be started or restarted and does nothing.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  broker_url:
    description:
      - Korrigo's C(CELERY_BROKER_URL), for example C(redis://127.0.0.1:6379/0).
    type: str
    required: true
  queue:
    description:
      - Queue whose backlog is measured (Korrigo uses the default queue only).
    type: str
    default: celery
  state:
    description:
      - V(started) - make sure a worker runs; V(restarted) - restart it (see O(restart_policy)).
      - Not set - only report.
    type: str
    choices: [ started, restarted ]
  restart_policy:
    description:
      - With O(state=restarted) - V(if_unhealthy) restarts only when no worker answers (no change otherwise);
        V(always) restarts every time (always a change).
    type: str
    default: if_unhealthy
    choices: [ if_unhealthy, always ]
  compose_project:
    description:
      - docker-compose project of Korrigo; the worker is its O(compose_service) container.
    type: str
  compose_service:
    description:
      - Compose service of the Celery worker.
    type: str
    default: celery
  systemd_unit:
    description:
      - systemd unit of the worker, instead of a compose service.
    type: str
  docker_host:
    description:
      - Docker daemon URL; default from the environment.
    type: str
  ping_timeout:
    description:
      - Seconds to wait for the workers' replies to one ping.
    type: float
    default: 2.0
  wait_timeout:
    description:
      - Seconds to wait for a worker to answer after starting or restarting it.
    type: int
    default: 90
extends_documentation_fragment:
  - korrigo.ops.korrigo.attributes_remediation
notes:
  - C(diff_mode) shows the worker's running state and answering workers before and after.
requirements:
  - celery and redis Python libraries; the Docker SDK (C(docker)) with O(compose_project).
seealso:
  - module: korrigo.ops.celery_task
'''

EXAMPLES = r'''
- name: How are the workers?
  korrigo.ops.celery_health:
    broker_url: redis://127.0.0.1:6385/0
  register: celery

- name: Start the worker if it is down, wait until it answers
  korrigo.ops.celery_health:
    broker_url: "{{ korrigo_broker_url }}"
    compose_project: korrigo
    state: started

- name: Restart a worker that runs but no longer answers
  korrigo.ops.celery_health:
    broker_url: "{{ korrigo_broker_url }}"
    systemd_unit: korrigo-celery.service
    state: restarted
    restart_policy: if_unhealthy
'''

RETURN = r'''
healthy:
  description: True when at least one worker answers the ping.
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
service:
  description: The worker's containers (C(name), C(id), C(status)) or systemd unit (C(unit), C(active)) before any action.
  returned: when compose_project or systemd_unit is set
  type: dict
action:
  description: What was (or would be in check mode) done - C(none), C(started) or C(restarted).
  returned: always
  type: str
waited_seconds:
  description: Seconds waited for a worker to answer after the action.
  returned: always
  type: float
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.broker import broker_client, celery_app, redis
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.media import docker_client, service_containers
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import run_module


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


class WorkerService(object):
    """The worker's compose containers or systemd unit."""

    def __init__(self, module):
        self.module = module
        params = module.params
        self.project = params['compose_project']
        self.service = params['compose_service']
        self.unit = params['systemd_unit']
        self.client = docker_client(params['docker_host']) if self.project else None

    def containers(self):
        containers = service_containers(self.client, self.project, self.service)
        if not containers:
            raise KorrigoError("no container of compose service %s/%s (labels com.docker.compose.project=%s, "
                               "com.docker.compose.service=%s): create it with docker-compose up first"
                               % (self.project, self.service, self.project, self.service))
        return containers

    def describe(self):
        if self.project:
            return {'kind': 'compose', 'project': self.project, 'service': self.service,
                    'containers': [{'name': c.name, 'id': c.short_id, 'status': c.status} for c in self.containers()]}
        rc, out, _err = self.module.run_command(['systemctl', 'is-active', self.unit])
        return {'kind': 'systemd', 'unit': self.unit, 'active': out.strip() == 'active'}

    @staticmethod
    def running(description):
        if description['kind'] == 'compose':
            return any(c['status'] == 'running' for c in description['containers'])
        return description['active']

    def act(self, action):
        if self.project:
            for container in self.containers():
                try:
                    if action == 'restarted':
                        container.restart(timeout=10)
                    elif container.status != 'running':
                        container.start()
                except Exception as err:
                    raise KorrigoError("could not %s container %s: %s"
                                       % ('restart' if action == 'restarted' else 'start', container.name, err))
            return
        verb = 'restart' if action == 'restarted' else 'start'
        rc, _out, err = self.module.run_command(['systemctl', verb, self.unit])
        if rc != 0:
            raise KorrigoError("systemctl %s %s failed (rc=%d): %s" % (verb, self.unit, rc, err.strip()))

    def logs(self, lines=15):
        if not self.project:
            rc, out, _err = self.module.run_command(['journalctl', '-u', self.unit, '-n', str(lines), '--no-pager'])
            return out.strip().splitlines()[-lines:] if rc == 0 else []
        tail = []
        for container in self.containers():
            try:
                text = container.logs(tail=lines).decode('utf-8', 'replace')
            except Exception:  # logs are a courtesy in an error message
                continue
            tail.extend('%s: %s' % (container.name, line) for line in text.strip().splitlines())
        return tail[-lines:]

    def close(self):
        if self.client is not None:
            self.client.close()


def decide(state, policy, healthy, running):
    """The action state/restart_policy ask for, given what was seen."""
    if state == 'started':
        return 'started' if not healthy and not running else 'none'
    if state == 'restarted':
        return 'restarted' if policy == 'always' or not healthy else 'none'
    return 'none'


def wait_for_worker(params, deadline):
    workers = []
    while True:
        reachable, error, _length = broker_state(params['broker_url'], params['queue'])
        if reachable:
            workers = inspect_workers(params['broker_url'], params['ping_timeout'])
            if workers:
                return workers
        if time.time() >= deadline:
            return workers
        time.sleep(1)


def health(module):
    params = module.params
    state = params['state']
    if params['compose_project'] and params['systemd_unit']:
        raise KorrigoError("set compose_project or systemd_unit, not both")
    if state and not (params['compose_project'] or params['systemd_unit']):
        raise KorrigoError("state=%s needs compose_project (the worker's compose service) or systemd_unit" % state)
    if params['ping_timeout'] <= 0 or params['wait_timeout'] < 0:
        raise KorrigoError("ping_timeout must be positive and wait_timeout not negative")

    reachable, error, queue_length = broker_state(params['broker_url'], params['queue'])
    workers = inspect_workers(params['broker_url'], params['ping_timeout']) if reachable else []
    service = WorkerService(module) if (params['compose_project'] or params['systemd_unit']) else None
    try:
        description = service.describe() if service else None
        if state and not reachable:
            raise KorrigoError("%s: the worker cannot be reached or confirmed without its broker, so nothing was "
                               "started or restarted; bring Redis back first" % error, service=description)
        running = WorkerService.running(description) if description else None
        action = decide(state, params['restart_policy'], bool(workers), running)
        waited = 0.0
        if state == 'started' and action == 'none' and not workers and running and not module.check_mode:
            # Running but silent: maybe still starting; give it the wait, then say what to do.
            action_taken = 'none'
        else:
            action_taken = action
        if action != 'none' and not module.check_mode:
            service.act(action)
        if state and not module.check_mode and (action != 'none' or not workers):
            started = time.time()
            workers = wait_for_worker(params, started + params['wait_timeout'])
            waited = round(time.time() - started, 1)
            if not workers:
                after = service.describe()
                hint = ('the container runs but its worker does not answer: use state=restarted'
                        if action_taken == 'none' and WorkerService.running(after) else 'see its logs')
                raise KorrigoError("no Celery worker answered within %ss after %s (%s)" % (
                    params['wait_timeout'], 'starting it' if action != 'none' else 'checking', hint),
                    service=after, logs=service.logs(), action=action)
            reachable, error, queue_length = broker_state(params['broker_url'], params['queue'])
    finally:
        if service:
            service.close()

    before = {'running': running, 'workers_answering': 0 if action != 'none' else len(workers)}
    result = {
        'changed': action != 'none',
        'action': action,
        'healthy': bool(workers),
        'workers': workers,
        'workers_answering': len(workers),
        'active': sum(w['active'] for w in workers),
        'reserved': sum(w['reserved'] for w in workers),
        'queue_length': queue_length,
        'broker': {'reachable': reachable, 'error': error},
        'waited_seconds': waited,
        'check_mode': module.check_mode,
    }
    if description is not None:
        result['service'] = description
    if module._diff and action != 'none':
        result['diff'] = {'before': before, 'after': {'running': True, 'workers_answering': len(workers),
                                                      'action': action}}
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            broker_url=dict(type='str', required=True),
            queue=dict(type='str', default='celery'),
            state=dict(type='str', choices=['started', 'restarted']),
            restart_policy=dict(type='str', default='if_unhealthy', choices=['if_unhealthy', 'always']),
            compose_project=dict(type='str'),
            compose_service=dict(type='str', default='celery'),
            systemd_unit=dict(type='str'),
            docker_host=dict(type='str'),
            ping_timeout=dict(type='float', default=2.0),
            wait_timeout=dict(type='int', default=90),
        ),
        mutually_exclusive=[('compose_project', 'systemd_unit')],
        supports_check_mode=True,
    )
    run_module(module, lambda: health(module))


if __name__ == '__main__':
    main()
