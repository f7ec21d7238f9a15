# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Celery broker (Redis) as the modules read it: one place that opens it and reads a queue's length.

Korrigo's Celery uses the default queue ``celery`` only; its backlog is the Redis list ``celery``
(``LLEN celery``). Worker health (ping, concurrency, what they hold) belongs to celery_health.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

REDIS_IMPORT_ERROR = None
try:
    import redis
    HAS_REDIS = True
except ImportError:
    redis = None
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

DEFAULT_QUEUE = 'celery'


def broker_client(url, timeout=5.0):
    """A Redis client for Korrigo's CELERY_BROKER_URL, or KorrigoError."""
    if not HAS_REDIS:
        raise KorrigoError("the redis Python library is required on the host running this module (pip install redis)",
                           exception=REDIS_IMPORT_ERROR)
    if not url or not str(url).startswith(('redis://', 'rediss://', 'unix://')):
        raise KorrigoError("broker_url must be Korrigo's CELERY_BROKER_URL, e.g. redis://127.0.0.1:6379/0 (got %r)"
                           % (url,))
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def queue_length(url, queue=DEFAULT_QUEUE, timeout=5.0):
    """LLEN of a Celery queue; KorrigoError naming the broker when it does not answer."""
    client = broker_client(url, timeout)
    try:
        return int(client.llen(queue))
    except redis.RedisError as err:
        raise KorrigoError("Celery broker unreachable at %s: %s" % (url.split('@')[-1], err))
    finally:
        client.connection_pool.disconnect()


def _decode_task_message(raw):
    """(task name, args, kwargs) of one kombu message as the Redis transport stores it, or None."""
    import base64
    import json
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # the `unacked` hash stores [message, exchange, routing_key]
            message = message[0]
        body = message.get('body')
        if message.get('properties', {}).get('body_encoding') == 'base64':
            body = base64.b64decode(body)
        payload = json.loads(body)
        if isinstance(payload, list):  # protocol 2: [args, kwargs, embed]
            args, kwargs = payload[0], payload[1]
        else:  # protocol 1: {'task', 'args', 'kwargs'}
            args, kwargs = payload.get('args', []), payload.get('kwargs', {})
        task = message.get('headers', {}).get('task') or payload.get('task')
        return task, args, kwargs
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None


def pending_tasks(client, queue=DEFAULT_QUEUE):
    """Task messages waiting in the queue or reserved by a worker but not yet acknowledged (Redis transport)."""
    try:
        raw_messages = list(client.lrange(queue, 0, -1)) + list(client.hvals('unacked'))
    except redis.RedisError as err:
        raise KorrigoError("Celery broker unreachable: %s" % err)
    decoded = (_decode_task_message(raw) for raw in raw_messages)
    return [message for message in decoded if message is not None]


MARKER_PREFIX = 'korrigo_ops:queued:'
FINISHED_STATES = ('SUCCESS', 'FAILURE', 'REVOKED')


def marker_key(task_name, key):
    return '%s%s:%s' % (MARKER_PREFIX, task_name, key)


def tasks_still_running(client, task_name, keys):
    """Keys whose task this collection queued and whose result is not final yet.

    A worker acknowledges a message when it starts it, so a running task has left the queue; the marker
    set when queueing and Celery's result (celery-task-meta-<id>, same Redis) tell it is still running.
    """
    import json
    running = set()
    try:
        for key in keys:
            task_id = client.get(marker_key(task_name, key))
            if task_id is None:
                continue
            task_id = task_id.decode() if isinstance(task_id, bytes) else task_id
            meta = client.get('celery-task-meta-%s' % task_id)
            if meta is not None and json.loads(meta).get('status') in FINISHED_STATES:
                client.delete(marker_key(task_name, key))
                continue
            running.add(key)
    except (redis.RedisError, ValueError) as err:
        raise KorrigoError("Celery broker unreachable or unreadable: %s" % err)
    return running


def mark_queued(client, task_name, queued, ttl_seconds):
    """Remember the task id queued per key until its result is final (or ttl_seconds pass)."""
    try:
        pipe = client.pipeline()
        for item in queued:
            pipe.set(marker_key(task_name, item['copy_id']), item['task_id'], ex=ttl_seconds)
        pipe.execute()
    except redis.RedisError as err:
        raise KorrigoError("tasks were queued but their markers could not be written: %s" % err)


# celery is imported by celery_app only: the modules that read the broker (korrigo_latency_facts' backlog) would
# otherwise pay its import (80 ms) on every run.
def celery_app(url):
    """A Celery client app for Korrigo's broker: JSON only, as Korrigo accepts; never retries a dead broker."""
    try:
        from celery import Celery
    except ImportError:
        raise KorrigoError("the celery Python library is required on the host running this module (pip install celery)",
                           exception=traceback.format_exc())
    app = Celery('korrigo_ops', broker=url)
    app.conf.update(task_serializer='json', accept_content=['json'], result_accept_content=['json'],
                    broker_connection_timeout=5, broker_connection_retry=False, broker_connection_max_retries=0)
    return app
