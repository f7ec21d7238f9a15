"""Scenario 2 modules against the real schema: annotation_bounds, copy_status, celery_task."""
import uuid

import pytest
import redis

from conftest import run_module

BROKER = 'redis://127.0.0.1:56379/0'
FINALIZE = 'grading.tasks.async_finalize_copy'


def annotations(db, copy_ids):
    return db.query("SELECT id::text, copy_id::text, page_index, x, y, w, h, content, type, score_delta, version "
                    "FROM grading_annotation WHERE copy_id = ANY(%s::uuid[]) ORDER BY id", (copy_ids,))


def out_of_bounds(db):
    return db.scalar("SELECT count(*) FROM grading_annotation WHERE x < 0 OR y < 0 OR w < 0 OR h < 0 "
                     "OR x + w > 1 OR y + h > 1 OR 'NaN'::float8 IN (x, y, w, h)")


def test_clamp_keeps_every_annotation_with_its_content_and_score(korrigo):
    seeded = korrigo.seed('finalization')
    copies = seeded['out_of_bounds_copy_ids']
    before = annotations(korrigo, copies)
    assert out_of_bounds(korrigo) == 4  # three on the failed copies, one on the READY ready_oob control

    result = korrigo.run('annotation_bounds', diff=True, copy_ids=copies)

    assert result.get('failed') is not True, result
    assert result['changed'] is True and result['count'] == 3
    after = annotations(korrigo, copies)
    assert [(a['id'], a['content'], a['type'], a['score_delta'], a['page_index']) for a in after] == \
        [(b['id'], b['content'], b['type'], b['score_delta'], b['page_index']) for b in before]
    assert out_of_bounds(korrigo) == 1
    clamped = dict((a['annotation_id'], a) for a in result['actions'])
    for row in after:
        if row['id'] in clamped:
            assert row['version'] == 1
            assert 0 <= row['x'] <= 1 - row['w'] + 1e-9 and 0 <= row['y'] <= 1 - row['h'] + 1e-9
    shifted = [a for a in result['actions'] if a['before']['x'] == 0.85]
    assert shifted and all(a['after']['w'] == pytest.approx(0.3) for a in shifted)  # size kept, box moved
    assert set(result['diff']['before']['annotations']) == set(clamped)
    assert korrigo.scalar("SELECT count(*) FROM grading_gradingevent WHERE action = 'UPDATE_ANN'") == 3
    assert korrigo.scalar("SELECT count(*) FROM core_auditlog WHERE action = 'korrigo_ops.annotation.clamp'") == 3

    again = korrigo.run('annotation_bounds', copy_ids=copies)
    assert again['changed'] is False and again['count'] == 0


def test_border_and_graded_copies_are_left_alone(korrigo):
    seeded = korrigo.seed('finalization')
    korrigo.query("UPDATE grading_annotation SET x = 0.9 WHERE copy_id = %s RETURNING id",
                  (seeded['graded_copy_ids'][0],))
    checksums = korrigo.checksums()
    result = korrigo.run('annotation_bounds', copy_ids=seeded['border_copy_ids'] + seeded['graded_copy_ids'])
    assert result['changed'] is False and result['count'] == 0
    assert korrigo.checksums() == checksums


def test_delete_keeps_a_backup_of_each_row_in_the_audit_trail(korrigo):
    seeded = korrigo.seed('finalization')
    copy_id = seeded['out_of_bounds_copy_ids'][0]
    before = annotations(korrigo, [copy_id])
    result = korrigo.run('annotation_bounds', copy_ids=[copy_id], mode='delete')
    assert result['count'] == 1
    backup = korrigo.query("SELECT metadata FROM core_auditlog WHERE action = 'korrigo_ops.annotation.delete'")
    assert len(backup) == 1
    row = backup[0]['metadata']['backup']
    removed = [a for a in before if a['id'] == row['id']][0]
    assert (row['content'], row['score_delta'], row['x'], row['w']) == \
        (removed['content'], removed['score_delta'], removed['x'], removed['w'])
    assert korrigo.scalar("SELECT count(*) FROM grading_gradingevent WHERE action = 'DELETE_ANN'") == 1


def test_check_mode_and_bad_input_change_nothing(korrigo):
    seeded = korrigo.seed('finalization')
    checksums = korrigo.checksums()
    dry = korrigo.run('annotation_bounds', check_mode=True, all_copies=True)
    assert dry['changed'] is True and dry['count'] == 4
    prevention = korrigo.run('annotation_bounds', check_mode=True, all_copies=True, statuses=['READY'])
    assert prevention['count'] == 1 and prevention['actions'][0]['copy_id'] == seeded['ready_oob_copy_ids'][0]
    for args, message in [
        (dict(), 'empty selector'),
        (dict(copy_ids=['nope']), 'malformed copy id'),
        (dict(copy_ids=[str(uuid.uuid4())]), 'unknown copy ids'),
        (dict(all_copies=True, max_changes=2), 'more than max_changes=2'),
        (dict(all_copies=True, copy_ids=seeded['border_copy_ids']), 'exclusive'),
        (dict(all_copies=True, statuses=['GRADED']), 'include_graded'),
        (dict(all_copies=True, statuses=['DONE']), 'statuses'),
    ]:
        result = korrigo.run('annotation_bounds', **args)
        assert result.get('failed') is True and message in result['msg'], (args, result)
    for args, message in [
        (dict(copy_ids=[]), 'empty selector'),
        (dict(copy_ids=[str(uuid.uuid4())]), 'unknown copy ids'),
        (dict(failed=True, copy_ids=seeded['border_copy_ids'], media_root=seeded['media_root']), 'exclusive'),
        (dict(failed=True), 'set media_root'),
        (dict(failed=True, media_root=seeded['media_root'], max_changes=2), 'more than max_changes=2'),
        (dict(failed=True, media_root=seeded['media_root'], parallel=0), 'parallel must be at least 1'),
    ]:
        result = korrigo.run('copy_status', **args)
        assert result.get('failed') is True and message in result['msg'], (args, result)
    assert korrigo.checksums() == checksums


def test_copy_status_failed_builds_the_whole_work_list_from_the_page_images(korrigo):
    """failed=true: every failing copy by copy_rules, its page images checked; the same verdicts as the role's
    pdf_check + with_page_verdicts gave, and the worker-died copy made finalizable."""
    seeded = korrigo.seed('finalization')
    repairable = sorted(c for group in ('out_of_bounds', 'same_actor', 'worker_died', 'unknown', 'failed_once', 'border')
                        for c in seeded['%s_copy_ids' % group])
    checksums = korrigo.checksums()
    dry = korrigo.run('copy_status', check_mode=True, failed=True, media_root=seeded['media_root'])
    assert dry.get('failed') is not True, dry
    assert korrigo.checksums() == checksums
    result = korrigo.run('copy_status', failed=True, media_root=seeded['media_root'])
    assert result['repairable_copy_ids'] == dry['repairable_copy_ids'] == repairable
    assert result['worker_died_copy_ids'] == seeded['worker_died_copy_ids']
    assert result['out_of_bounds_copy_ids'] == sorted(seeded['out_of_bounds_copy_ids'])
    verdicts = dict((c['copy_id'], c['pages_verdict']) for c in result['needs_human'])
    assert verdicts == {seeded['missing_pages_copy_ids'][0]: 'missing_pages',
                        seeded['unreadable_pages_copy_ids'][0]: 'unreadable_pages'}
    assert [a['copy_id'] for a in result['actions']] == seeded['worker_died_copy_ids']
    assert 'skipped' not in result  # a non-empty `skipped` would make Ansible show the task as skipped


def test_copy_status_follows_the_version_finalize_rules(korrigo):
    seeded = korrigo.seed('finalization')
    died = seeded['worker_died_copy_ids'][0]
    failed = seeded['failed_once_copy_ids'][0]
    graded = seeded['graded_copy_ids'][0]
    checksums = korrigo.checksums()
    dry = korrigo.run('copy_status', check_mode=True, copy_ids=[died, failed, graded])
    assert korrigo.checksums() == checksums
    result = korrigo.run('copy_status', copy_ids=[died, failed, graded])
    assert [a['copy_id'] for a in result['actions']] == [a['copy_id'] for a in dry['actions']] == [died]
    expected = 'READY' if korrigo.version == 'head' else 'GRADING_FAILED'
    assert result['actions'][0]['after']['status'] == expected
    assert expected in result['finalize_accepts']
    assert 'LOCKED' != expected
    skipped = dict((s['copy_id'], s['reason']) for s in result['skipped'])
    assert skipped == {failed: 'already finalizable', graded: 'status not eligible'}
    state = korrigo.query("SELECT status, grading_error_message FROM exams_copy WHERE id = %s", (died,))[0]
    assert state['status'] == expected
    audit = korrigo.query("SELECT metadata FROM core_auditlog WHERE action = 'korrigo_ops.copy_status.make_finalizable'")
    assert len(audit) == 1 and audit[0]['metadata']['status_before'] == 'GRADING_IN_PROGRESS'
    assert korrigo.run('copy_status', copy_ids=[died])['changed'] is False


def test_copy_status_leaves_a_recent_in_progress_copy_and_resets_retries_when_asked(korrigo_head):
    seeded = korrigo_head.seed('finalization')
    died, failed = seeded['worker_died_copy_ids'][0], seeded['failed_once_copy_ids'][0]
    recent = korrigo_head.run('copy_status', copy_ids=[died], stale_after_minutes=600)
    assert recent['changed'] is False and 'still be running' in recent['skipped'][0]['reason']
    reset = korrigo_head.run('copy_status', copy_ids=[failed], reset_retries=True)
    assert reset['count'] == 1 and reset['actions'][0]['after'] == \
        {'status': 'GRADING_FAILED', 'grading_retries': 0, 'locked_by_id': None}


@pytest.fixture
def idle_queue(stack):
    """A queue no worker consumes: what is sent there stays pending."""
    name = 'korrigo_ops_test_%s' % uuid.uuid4().hex[:8]
    yield name
    redis.Redis.from_url(BROKER).delete(name)


def test_celery_task_queues_once_per_copy_in_celery_format(idle_queue, korrigo_head):
    korrigo_head.seed('baseline')  # the remediation user and Korrigo's trail tables (one audit row per task)
    db = korrigo_head.connection
    copies = [str(uuid.uuid4()), str(uuid.uuid4())]
    dry = run_module('celery_task', check_mode=True, broker_url=BROKER, **db, task=FINALIZE, copy_ids=copies, args=[7],
                     queue=idle_queue)
    assert dry['changed'] is True and dry['count'] == 2
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0
    first = run_module('celery_task', broker_url=BROKER, **db, task=FINALIZE, copy_ids=copies, args=[7], queue=idle_queue)
    assert first['count'] == 2 and all(q['task_id'] for q in first['queued'])
    second = run_module('celery_task', broker_url=BROKER, **db, task=FINALIZE, copy_ids=copies + [str(uuid.uuid4())],
                        args=[7], queue=idle_queue)
    assert second['count'] == 1 and sorted(second['already_pending']) == sorted(copies)
    import json
    import base64
    message = json.loads(redis.Redis.from_url(BROKER).lindex(idle_queue, -1))
    assert message['headers']['task'] == FINALIZE
    args, kwargs, _embed = json.loads(base64.b64decode(message['body']))
    assert args[1] == 7 and kwargs == {}
    audit = korrigo_head.query("SELECT resource_id FROM core_auditlog WHERE action = 'korrigo_ops.celery_task.queue'")
    assert sorted(r['resource_id'] for r in audit) == sorted(copies + [second['queued'][0]['copy_id']])


def test_celery_task_bad_input(idle_queue, korrigo_head):
    korrigo_head.seed('baseline')
    db = korrigo_head.connection
    for args, message in [
        (dict(broker_url='redis://127.0.0.1:1/0'), 'unreachable'),
        (dict(broker_url='http://nope'), 'CELERY_BROKER_URL'),
        (dict(broker_url=BROKER, copy_ids=['x']), 'malformed copy id'),
        (dict(broker_url=BROKER, copy_ids=[str(uuid.uuid4()) for _i in range(3)], max_changes=2), 'max_changes=2'),
    ]:
        result = run_module('celery_task', task=FINALIZE, queue=idle_queue, **dict(db, **args))
        assert result.get('failed') is True and message in result['msg'], (args, result)
    assert redis.Redis.from_url(BROKER).llen(idle_queue) == 0


def test_repaired_copies_finalize_on_both_versions(korrigo):
    """The repair leaves every copy in a state the version's own finalize (the stand-in's copy of it) accepts."""
    from korrigo_stack import finalize

    seeded = korrigo.seed('finalization')
    ops = seeded['users']['korrigo-ops']
    repairable = [c for group in ('out_of_bounds', 'same_actor', 'worker_died', 'unknown', 'failed_once', 'border')
                  for c in seeded['%s_copy_ids' % group]]
    assert korrigo.run('annotation_bounds', copy_ids=seeded['out_of_bounds_copy_ids'])['count'] == 3
    assert korrigo.run('copy_status', copy_ids=seeded['worker_died_copy_ids'])['count'] == 1
    if korrigo.version == '8f16b75':
        # 8f16b75's finalize wants the finalizing user's lock, or locked_by with no lock row: "Lock required."
        with pytest.raises(finalize.FinalizeRejected, match='Lock required'):
            finalize.finalize_copy(korrigo.conn, repairable[0], ops, version=korrigo.version,
                                   media_root=seeded['media_root'])
    claimed = korrigo.run('copy_status', copy_ids=repairable, claim_for_remediation_user=True)
    assert claimed.get('failed') is not True, claimed
    assert claimed['count'] == (len(repairable) if korrigo.version == '8f16b75' else 0)
    again = korrigo.run('copy_status', copy_ids=repairable, claim_for_remediation_user=True)
    assert again['changed'] is False
    outcomes = [finalize.finalize_copy(korrigo.conn, copy_id, ops, version=korrigo.version,
                                       media_root=seeded['media_root'])['status'] for copy_id in repairable]
    assert outcomes == ['GRADED'] * len(repairable)
    assert korrigo.scalar("SELECT count(*) FROM exams_copy WHERE id = ANY(%s::uuid[]) AND locked_by_id IS NOT NULL",
                          (repairable,)) == 0
    # As the teacher with two failures on record, Korrigo's get_or_create would still fail.
    teacher = seeded['users']['prof.martin']
    korrigo.query("UPDATE exams_copy SET status = 'GRADING_FAILED', locked_by_id = %s WHERE id = %s RETURNING id",
                  (teacher, seeded['same_actor_copy_ids'][0]))
    again = finalize.finalize_copy(korrigo.conn, seeded['same_actor_copy_ids'][0], teacher, version=korrigo.version,
                                   media_root=seeded['media_root'])
    assert again['status'] == 'GRADING_FAILED' and 'more than one GradingEvent' in again['detail']


def test_a_finalize_timeout_fails_like_korrigo_and_is_named(korrigo_head, monkeypatch):
    from korrigo_stack import finalize

    seeded = korrigo_head.seed('finalization')
    copy_id = seeded['border_copy_ids'][0]
    monkeypatch.setenv('KORRIGO_FINALIZE_TIMEOUT', '0')
    outcome = finalize.finalize_copy(korrigo_head.conn, copy_id, seeded['users']['prof.durand'], version='head',
                                     media_root=seeded['media_root'])
    assert outcome['status'] == 'GRADING_FAILED' and outcome['detail'].startswith('timeout')
    facts = korrigo_head.run('korrigo_facts', gather_subset=['finalizations'])['ansible_facts']['korrigo']
    causes = dict((c['copy_id'], c['cause']) for c in facts['finalizations']['copies'])
    assert causes[copy_id] == 'timeout'


def test_failed_copies_list_their_page_images_and_an_empty_pdf_source_is_no_cause(korrigo):
    seeded = korrigo.seed('finalization')
    facts = korrigo.run('korrigo_facts', gather_subset=['finalizations'])['ansible_facts']['korrigo']['finalizations']
    copies = dict((c['copy_id'], c) for c in facts['copies'])
    assert 'missing_pdf' not in facts['by_cause']
    batch = [c for c in copies.values() if c['creation_path'] == 'batch']
    assert len(batch) >= len(copies) - 1 and all(c['pdf_source'] == '' for c in batch)
    for copy_id, copy in copies.items():
        assert copy['pages_images'] == seeded['page_images'][copy_id]
    # The page images judged as Korrigo's flattener opens them: gone, unreadable, or fine.
    paths = [p for c in facts['copies'] for p in c['pages_images']]
    verdicts = run_module('pdf_check', media_root=seeded['media_root'], kind='image', paths=paths)['files']
    by_path = dict((v['path'], v['verdict']) for v in verdicts)
    missing = seeded['page_images'][seeded['missing_pages_copy_ids'][0]]
    unreadable = seeded['page_images'][seeded['unreadable_pages_copy_ids'][0]]
    assert [by_path[p] for p in missing] == ['missing', 'missing']
    assert [by_path[p] for p in unreadable] == ['corrupted', 'ok']
    fine = [p for p in paths if p not in missing + unreadable]
    assert fine and all(by_path[p] == 'ok' for p in fine)


def test_a_copy_without_page_images_is_named_no_pages(korrigo):
    seeded = korrigo.seed('finalization')
    copy_id = seeded['unknown_copy_ids'][0]
    korrigo.query("UPDATE exams_booklet b SET pages_images = '[]'::jsonb FROM exams_copy_booklets cb"
                  " WHERE cb.booklet_id = b.id AND cb.copy_id = %s RETURNING b.id", (copy_id,))
    facts = korrigo.run('korrigo_facts', gather_subset=['finalizations'])['ansible_facts']['korrigo']['finalizations']
    assert dict((c['copy_id'], c['cause']) for c in facts['copies'])[copy_id] == 'no_pages'


def test_claiming_on_8f16b75_skips_a_copy_that_holds_a_lock(korrigo):
    seeded = korrigo.seed('finalization')
    copy_id = seeded['unknown_copy_ids'][0]
    korrigo.query("INSERT INTO grading_copylock (token, locked_at, expires_at, copy_id, owner_id)"
                  " VALUES (gen_random_uuid(), now() - interval '2 hours', now() - interval '1 hour', %s, %s)"
                  " RETURNING id", (copy_id, seeded['users']['prof.martin']))
    result = korrigo.run('copy_status', copy_ids=[copy_id], claim_for_remediation_user=True)
    if korrigo.version == '8f16b75':
        assert result['changed'] is False and 'release it first' in result['skipped'][0]['reason']
    else:
        assert result['changed'] is False and result['skipped'][0]['reason'] == 'already finalizable'
