"""Side effects outside SQL go through the remediation guard: celery_task against the real broker and database.

Advisory lock held for the whole pending check and queueing (two concurrent runs queue each copy once), one
core_auditlog row per task queued with the actor, max_changes refused before anything is sent, check mode sends
and writes nothing. Tasks go to a queue no worker consumes, so they stay pending."""
import uuid

import pytest
import redis

from conftest import finish_module

BROKER = 'redis://127.0.0.1:56379/0'
FINALIZE = 'grading.tasks.async_finalize_copy'


@pytest.fixture(name='idle_queue')
def idle_queue_fixture(stack):
    """A queue no worker consumes: what is sent there stays pending (and the markers of its tasks go too)."""
    name = 'korrigo_ops_guard_%s' % uuid.uuid4().hex[:8]
    client = redis.Redis.from_url(BROKER)
    yield name
    client.delete(name)
    client.close()


def forget_markers(copies):
    client = redis.Redis.from_url(BROKER)
    for copy_id in copies:
        client.delete('korrigo_ops:queued:%s:%s' % (FINALIZE, copy_id))
    client.close()


@pytest.fixture(name='copies')
def copies_fixture():
    ids = [str(uuid.uuid4()) for _i in range(3)]
    yield ids
    forget_markers(ids)


def queue_audit(db):
    return db.query("SELECT a.resource_type, a.resource_id, a.metadata, u.username FROM core_auditlog a "
                    "LEFT JOIN auth_user u ON u.id = a.user_id WHERE a.action = 'korrigo_ops.celery_task.queue' "
                    "ORDER BY a.resource_id")


def queued_copies(queue):
    import base64
    import json
    client = redis.Redis.from_url(BROKER)
    try:
        return sorted(json.loads(base64.b64decode(json.loads(raw)['body']))[0][0]
                      for raw in client.lrange(queue, 0, -1))
    finally:
        client.close()


def test_two_concurrent_runs_queue_each_copy_once_with_one_audit_row(korrigo, idle_queue, copies):
    korrigo.seed('baseline')
    args = dict(broker_url=BROKER, task=FINALIZE, copy_ids=copies, args=[7], queue=idle_queue)
    started = [korrigo.start('celery_task', **args) for _i in range(2)]
    results = [finish_module(one) for one in started]
    assert not any(r.get('failed') for r in results), results
    assert queued_copies(idle_queue) == sorted(copies)  # each copy exactly once
    assert sum(r.get('count', 0) for r in results) == 3
    for result in results:  # the other run was skipped, or found the tasks pending once the first was done
        assert result.get('skipped_concurrent_run') or result['count'] == 3 or \
            sorted(result['already_pending']) == sorted(copies), result
    rows = queue_audit(korrigo)
    assert [(r['resource_type'], r['resource_id'], r['username']) for r in rows] == \
        [('Copy', copy_id, 'korrigo-ops') for copy_id in sorted(copies)]
    done = [r for r in results if r.get('count')][0]
    task_ids = dict((q['copy_id'], q['task_id']) for q in done['queued'])
    for row in rows:
        meta = row['metadata']
        assert meta['task'] == FINALIZE and meta['queue'] == idle_queue and meta['task_id'] == task_ids[row['resource_id']]
        assert meta['args'] == [row['resource_id'], 7] and meta['remediation'] == 'celery_task'
        assert meta['actor'] == 'korrigo-ops' and meta['after']['queued'] is True

    again = korrigo.run('celery_task', **args)
    assert again['count'] == 0 and sorted(again['already_pending']) == sorted(copies) and again['audit_rows'] == 0
    assert len(queue_audit(korrigo)) == 3


def test_max_changes_below_the_count_queues_nothing(korrigo, idle_queue, copies):
    korrigo.seed('baseline')
    before = korrigo.checksums()
    result = korrigo.run('celery_task', broker_url=BROKER, task=FINALIZE, copy_ids=copies, queue=idle_queue,
                         max_changes=2)
    assert result['failed'] and 'max_changes=2' in result['msg']
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0 and korrigo.checksums() == before


def test_check_mode_queues_nothing_and_writes_nothing(korrigo, idle_queue, copies):
    korrigo.seed('baseline')
    before = korrigo.checksums()
    dry = korrigo.run('celery_task', check_mode=True, broker_url=BROKER, task=FINALIZE, copy_ids=copies,
                      queue=idle_queue)
    assert dry['changed'] is True and dry['count'] == 3 and dry['audit_rows'] == 0
    assert dry['audit_actions'] == ['korrigo_ops.celery_task.queue']
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0 and korrigo.checksums() == before
    assert redis.Redis.from_url(BROKER).get('korrigo_ops:queued:%s:%s' % (FINALIZE, copies[0])) is None


def test_a_run_holding_the_lock_skips_and_an_unknown_actor_queues_nothing(korrigo_head, idle_queue, copies):
    import psycopg2
    from conftest import dsn_for
    korrigo_head.seed('baseline')
    holder = psycopg2.connect(dsn_for(korrigo_head.name))
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('korrigo.ops'), hashtext('celery_task'))")
        skipped = korrigo_head.run('celery_task', broker_url=BROKER, task=FINALIZE, copy_ids=copies, queue=idle_queue)
        assert skipped.get('skipped_concurrent_run') is True and skipped['changed'] is False
    finally:
        holder.rollback()
        holder.close()
    nobody = korrigo_head.run('celery_task', broker_url=BROKER, task=FINALIZE, copy_ids=copies, queue=idle_queue,
                              remediation_user='nobody-here')
    assert nobody['failed'] and "remediation user 'nobody-here' does not exist" in nobody['msg']
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0 and queue_audit(korrigo_head) == []


def test_no_database_no_queueing(stack, idle_queue, copies):
    from conftest import run_module
    result = run_module('celery_task', broker_url=BROKER, task=FINALIZE, copy_ids=copies, queue=idle_queue,
                        login_host='127.0.0.1', login_port=1, connect_timeout=2)
    assert result['failed'] and 'database server unreachable' in result['msg']
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0
