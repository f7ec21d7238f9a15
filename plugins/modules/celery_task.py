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
  max_changes:
    description:
      - Most tasks queued in one run; more fails without queueing anything.
    type: int
    default: 100
  pending_ttl:
    description:
      - Seconds a queued task counts as pending when its result never shows up in the result backend.
    type: int
    default: 3600
attributes:
  check_mode:
    description: Reports which tasks would be queued; sends nothing.
    support: full
  diff_mode:
    description: Nothing in the database changes; the queued tasks are listed in RV(queued).
    support: none
  idempotent:
    description: A task already pending for a copy is not queued again.
    support: full
requirements:
  - celery and redis Python libraries on the host that runs the module.
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
'''

import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.broker import (
    broker_client, celery_app, mark_queued, pending_tasks, tasks_still_running,
)
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    check_max_changes, check_positive_max_changes, run_module, validate_uuids,
)


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


def send(params, to_queue):
    app = celery_app(params['broker_url'])
    queued = []
    try:
        with app.producer_or_acquire() as producer:
            for copy_id, args in to_queue:
                task_id = str(uuid.uuid4())
                app.send_task(params['task'], args=args, kwargs=params['kwargs'], queue=params['queue'],
                              task_id=task_id, producer=producer, retry=False)
                queued.append({'copy_id': copy_id, 'task_id': task_id})
    except Exception as err:  # kombu raises transport-specific errors; name what was sent before it failed
        raise KorrigoError("queueing %s failed after %d of %d tasks: %s" % (params['task'], len(queued), len(to_queue), err),
                           queued=queued)
    return queued


def queue_tasks(module):
    params = module.params
    check_positive_max_changes(params['max_changes'])
    keys = validate_uuids(params['copy_ids']) or [None]
    client = broker_client(params['broker_url'])
    try:
        pending = pending_keys(pending_tasks(client, params['queue']), params['task'])
        pending |= tasks_still_running(client, params['task'], keys)
        to_queue, skipped = plan(params, pending)
        check_max_changes(len(to_queue), params['max_changes'])
        if module.check_mode:
            queued = [{'copy_id': copy_id, 'task_id': None} for copy_id, _args in to_queue]
        else:
            queued = send(params, to_queue)
            mark_queued(client, params['task'], queued, params['pending_ttl'])
    finally:
        client.connection_pool.disconnect()
    return {'changed': bool(queued), 'count': len(queued), 'queued': queued, 'already_pending': skipped,
            'task': params['task']}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            broker_url=dict(type='str', required=True, no_log=True),
            task=dict(type='str', required=True),
            copy_ids=dict(type='list', elements='str', default=[]),
            args=dict(type='list', elements='raw', default=[]),
            kwargs=dict(type='dict', default={}),
            queue=dict(type='str', default='celery'),
            max_changes=dict(type='int', default=100),
            pending_ttl=dict(type='int', default=3600),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda: queue_tasks(module))


if __name__ == '__main__':
    main()
