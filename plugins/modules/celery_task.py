#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: celery_task
short_description: Queue one of Korrigo's Celery tasks per copy, so Korrigo's own worker runs it
version_added: 0.1.0
description:
  - Sends a task by name, in Celery's own message format (through the celery library), to Korrigo's broker
    and queue, so the real worker runs Korrigo's real code (for example C(grading.tasks.async_finalize_copy)).
  - With O(copy_ids), one task per copy, each with the copy id as first argument followed by O(args).
  - Refuses to queue a (task, copy) pair while one is already pending - waiting in the queue or reserved by a
    worker - or already running (a marker per queued task in Redis, cleared once Celery's result backend
    shows it finished), and lists it in RV(already_pending) instead.
    Without O(copy_ids), the task is not queued while any message of it is pending.
  - Arguments are JSON only, as Korrigo's Celery accepts (C(CELERY_ACCEPT_CONTENT = ['json'])).
  - Queueing goes through the guard of every remediation, so it needs Korrigo's database (the connection options,
    passed by the roles through the C(korrigo.ops.korrigo) action group) - one transaction holds the advisory lock
    of C(celery_task) for the whole pending check and queueing, so two concurrent runs cannot both queue the same
    copy (the second returns C(skipped_concurrent_run), or finds the tasks pending once the first is done);
    O(remediation_user) is the actor; the number of tasks to queue is checked against O(max_changes) before the
    first is sent; each task queued writes one C(core_auditlog) row (action C(korrigo_ops.celery_task.queue),
    resource C(Copy) with the copy id, or C(CeleryTask) with the task name without O(copy_ids); metadata with the
    task, its id, queue and arguments, the remediation and who ran it), committed once the tasks are sent. When
    sending fails part way, the rows of the tasks already sent are committed and the module fails naming them.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  broker_url:
    description:
      - Korrigo's C(CELERY_BROKER_URL), for example C(redis://127.0.0.1:6379/0).
    type: str
    required: true
  task:
    description:
      - Registered task name, for example C(grading.tasks.async_finalize_copy).
    type: str
    required: true
  copy_ids:
    description:
      - Queue one task per copy, the copy id as first positional argument.
    type: list
    elements: str
    default: []
  args:
    description:
      - Positional arguments (after the copy id when O(copy_ids) is set).
    type: list
    elements: raw
    default: []
  kwargs:
    description:
      - Keyword arguments.
    type: dict
    default: {}
  queue:
    description:
      - Queue the task is routed to (Korrigo uses the default queue only).
    type: str
    default: celery
  pending_ttl:
    description:
      - Seconds a queued task counts as pending when its result never shows up in the result backend.
    type: int
    default: 3600
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
attributes:
  check_mode:
    description:
      - Reports which tasks would be queued (under the advisory lock, the actor looked up as in a real run); sends
        nothing, writes no marker and no audit row.
    support: full
  diff_mode:
    description: Nothing in Korrigo's tables changes except the audit rows; the queued tasks are listed in RV(queued).
    support: none
  idempotent:
    description: A task already pending for a copy is not queued again.
    support: full
requirements:
  - celery and redis Python libraries on the host that runs the module (psycopg2, see the connection options).
seealso:
  - module: korrigo.ops.copy_status
'''

EXAMPLES = r'''
- name: Re-finalize the fixed copies as the remediation user
  korrigo.ops.celery_task:
    broker_url: "{{ korrigo_broker_url }}"
    task: grading.tasks.async_finalize_copy
    copy_ids: "{{ fixable_copy_ids }}"
    args: ["{{ remediation_user_id }}"]
    database_url: "{{ korrigo_database_url }}"
    remediation_user: korrigo-ops
'''

RETURN = r'''
queued:
  description: Tasks sent (or that would be sent in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e, task_id: 6c1d3c34-9a4e-4b8e-a0c2-2e0f3e6f1a77}]
already_pending:
  description: Copies skipped because the same task is already pending for them.
  returned: always
  type: list
  elements: str
count:
  description: Number of tasks queued.
  returned: always
  type: int
audit_rows:
  description: Number of C(core_auditlog) rows written (one per task queued; 0 in check mode).
  returned: success
  type: int
'''

import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.broker import (
    broker_client, celery_app, mark_queued, pending_tasks, tasks_still_running,
)
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    korrigo_common_argument_spec, korrigo_guard_argument_spec,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    check_positive_max_changes, validate_uuids,
)
from ansible_collections.korrigo.ops.plugins.module_utils.side_effects import SideEffects


def pending_keys(tasks, task_name):
    """What `task_name` is pending for: the copy id (first positional argument or copy_id keyword), or None."""
    pending = set()
    for name, args, kwargs in tasks:
        if name != task_name:
            continue
        if args:
            pending.add(str(args[0]))
        elif isinstance(kwargs, dict) and kwargs.get('copy_id'):
            pending.add(str(kwargs['copy_id']))
        else:
            pending.add(None)
    return pending


def plan(params, pending):
    """(copy id, args) pairs to queue and the copy ids skipped; without copy_ids, one task unless one is pending."""
    copy_ids = validate_uuids(params['copy_ids'])
    if not copy_ids:
        if pending:
            return [], [None]
        return [(None, list(params['args']))], []
    to_queue = [(copy_id, [copy_id] + list(params['args'])) for copy_id in copy_ids if copy_id not in pending]
    skipped = [copy_id for copy_id in copy_ids if copy_id in pending]
    return to_queue, skipped


def send(params, guard, to_queue):
    """Send each planned task through the guard (one audit row per task sent); the ids sent so far are kept in
    ``queued`` (the caller writes their pending markers even when a later send fails)."""
    queued = []
    if guard.check_mode:
        for copy_id, args in to_queue:
            guard.perform('korrigo_ops.celery_task.queue', 'Copy' if copy_id else 'CeleryTask',
                          copy_id or params['task'], None)
            queued.append({'copy_id': copy_id, 'task_id': None})
        return queued, None
    app = celery_app(params['broker_url'])
    failure = None
    try:
        with app.producer_or_acquire() as producer:
            for copy_id, args in to_queue:
                task_id = str(uuid.uuid4())

                def effect(args=args, task_id=task_id):
                    app.send_task(params['task'], args=args, kwargs=params['kwargs'], queue=params['queue'],
                                  task_id=task_id, producer=producer, retry=False)
                    return {'queued': True, 'task_id': task_id}

                guard.perform('korrigo_ops.celery_task.queue', 'Copy' if copy_id else 'CeleryTask',
                              copy_id or params['task'], effect, before={'pending': False},
                              metadata={'task': params['task'], 'task_id': task_id, 'queue': params['queue'],
                                        'args': args, 'kwargs': params['kwargs'], 'copy_id': copy_id})
                queued.append({'copy_id': copy_id, 'task_id': task_id})
    except KorrigoError as err:
        failure = err
    except Exception as err:  # kombu raises transport-specific errors when the producer cannot be opened
        failure = KorrigoError("queueing %s failed after %d of %d tasks: %s"
                               % (params['task'], len(queued), len(to_queue), err))
    finally:
        app.close()
    return queued, failure


def queue_tasks(module):
    params = module.params
    check_positive_max_changes(params['max_changes'])
    keys = validate_uuids(params['copy_ids']) or [None]
    client = broker_client(params['broker_url'])  # refuses a malformed broker URL before anything connects
    try:
        # The advisory lock is held from the pending check to the last task sent: no concurrent run can queue
        # the same copy in between.
        with SideEffects(params, 'celery_task', module.check_mode, tables=('core_auditlog', 'auth_user')) as guard:
            pending = pending_keys(pending_tasks(client, params['queue']), params['task'])
            pending |= tasks_still_running(client, params['task'], keys)
            to_queue, skipped = plan(params, pending)
            guard.plan(len(to_queue))
            queued, failure = send(params, guard, to_queue)
            if queued and not module.check_mode:
                mark_queued(client, params['task'], queued, params['pending_ttl'])
            if failure is not None:
                raise KorrigoError(failure.msg, queued=queued, **failure.details)
    finally:
        client.connection_pool.disconnect()
    return dict({'changed': bool(queued), 'count': len(queued), 'queued': queued, 'already_pending': skipped,
                 'task': params['task'], 'check_mode': module.check_mode}, **guard.result())


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(
        broker_url=dict(type='str', required=True, no_log=True),
        task=dict(type='str', required=True),
        copy_ids=dict(type='list', elements='str', default=[]),
        args=dict(type='list', elements='raw', default=[]),
        kwargs=dict(type='dict', default={}),
        queue=dict(type='str', default='celery'),
        pending_ttl=dict(type='int', default=3600),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: queue_tasks(module))


if __name__ == '__main__':
    main()
