"""Bounded waits: a remediation never waits longer than lock_timeout_ms for a row one of Korrigo's own
transactions holds; it changes nothing and names the session holding it. Both Korrigo versions."""
import json
import subprocess
import sys
import time

import psycopg2
import pytest

from conftest import dsn_for

BACKEND = 'korrigo-backend'


@pytest.fixture
def blocker(korrigo):
    """Korrigo's backend in the middle of a transaction (a teacher's finalize): holds what it locked until
    .release(); application_name korrigo-backend, as Korrigo's Django connections."""
    holder = Blocker(dsn_for(korrigo.name))
    yield holder
    holder.release()


class Blocker(object):
    def __init__(self, dsn):
        self.conn = psycopg2.connect(dsn, application_name=BACKEND)
        self.conn.autocommit = False
        self.pid = self.conn.get_backend_pid()

    def hold(self, statement, params=None):
        with self.conn.cursor() as cur:
            cur.execute(statement, params)
        return self

    def release(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.rollback()
            self.conn.close()
        self.conn = None


def timed(korrigo, module, **args):
    started = time.monotonic()
    result = korrigo.run(module, **args)
    return result, time.monotonic() - started


def assert_busy(result, elapsed, blocker, table):
    assert result.get('failed') is True, result
    msg = result['msg']
    assert elapsed < 15, elapsed
    busy, _sep, rest = msg.partition(' busy: held by ')
    assert table in busy.split('/'), msg
    assert rest.startswith('pid %d (' % blocker.pid), msg
    assert "application_name '%s'" % BACKEND in msg, msg
    assert 'idle in transaction since ' in msg and 'query started ' in msg, msg
    assert 'nothing was changed; retry later' in msg, msg
    assert 'stack-secret' not in msg
    holders = result['lock_holders']
    assert [h['pid'] for h in holders] == [blocker.pid]
    assert holders[0]['application_name'] == BACKEND and table in holders[0]['relations']
    assert result['lock_timeout_ms'] == 1000


def test_copylock_gives_up_on_a_copy_row_korrigo_holds_and_changes_nothing(korrigo, blocker):
    seeded = korrigo.seed('locks')
    held = seeded['expired_copy_ids'][0]
    checksums = korrigo.checksums()
    blocker.hold("SELECT id, status FROM exams_copy WHERE id = %s FOR UPDATE", (held,))

    result, elapsed = timed(korrigo, 'copylock', expired=True, lock_timeout_ms=1000)

    assert_busy(result, elapsed, blocker, 'exams_copy')
    assert 'copylock gave up after lock_timeout_ms=1000' in result['msg']
    assert korrigo.checksums() == checksums  # nothing released, no event, no audit row

    blocker.release()
    rerun = korrigo.run('copylock', expired=True, lock_timeout_ms=1000)
    assert rerun.get('failed') is not True, rerun
    assert rerun['count'] == 5 and held in [a['copy_id'] for a in rerun['actions']]
    assert korrigo.run('copylock', expired=True)['count'] == 0


def test_check_mode_gives_up_the_same_way(korrigo, blocker):
    seeded = korrigo.seed('locks')
    blocker.hold("SELECT id FROM exams_copy WHERE id = %s FOR UPDATE", (seeded['expired_copy_ids'][1],))
    checksums = korrigo.checksums()
    result, elapsed = timed(korrigo, 'copylock', check_mode=True, expired=True, lock_timeout_ms=1000)
    assert_busy(result, elapsed, blocker, 'exams_copy')
    assert korrigo.checksums() == checksums


def test_copy_status_gives_up_on_a_copy_in_finalize(korrigo, blocker):
    seeded = korrigo.seed('finalization')
    died = seeded['worker_died_copy_ids'][0]
    checksums = korrigo.checksums()
    blocker.hold("SELECT id FROM exams_copy WHERE id = %s FOR UPDATE", (died,))

    result, elapsed = timed(korrigo, 'copy_status', copy_ids=[died], lock_timeout_ms=1000)

    assert_busy(result, elapsed, blocker, 'exams_copy')
    assert 'copy_status gave up after lock_timeout_ms=1000' in result['msg']
    assert korrigo.checksums() == checksums

    blocker.release()
    rerun = korrigo.run('copy_status', copy_ids=[died], lock_timeout_ms=1000)
    assert rerun.get('failed') is not True, rerun
    assert [a['copy_id'] for a in rerun['actions']] == [died]


def test_annotation_bounds_gives_up_on_an_annotation_being_saved(korrigo, blocker):
    seeded = korrigo.seed('finalization')
    copies = seeded['out_of_bounds_copy_ids']
    checksums = korrigo.checksums()
    blocker.hold("UPDATE grading_annotation SET version = version WHERE copy_id = %s RETURNING id", (copies[0],))

    result, elapsed = timed(korrigo, 'annotation_bounds', copy_ids=copies, lock_timeout_ms=1000)

    assert_busy(result, elapsed, blocker, 'grading_annotation')
    assert korrigo.checksums() == checksums
    blocker.release()
    rerun = korrigo.run('annotation_bounds', copy_ids=copies, lock_timeout_ms=1000)
    assert rerun.get('failed') is not True and rerun['count'] == 3, rerun


def test_read_only_facts_give_up_on_a_table_lock(korrigo, blocker):
    korrigo.seed('locks')
    blocker.hold("LOCK TABLE exams_copy IN ACCESS EXCLUSIVE MODE")

    result, elapsed = timed(korrigo, 'korrigo_facts', gather_subset=['copies'], lock_timeout_ms=1000)

    assert_busy(result, elapsed, blocker, 'exams_copy')
    assert 'AccessExclusiveLock' in result['msg']
    assert 'korrigo_facts gave up after lock_timeout_ms=1000' in result['msg']
    blocker.release()
    facts = korrigo.run('korrigo_facts', gather_subset=['copies'], lock_timeout_ms=1000)
    assert facts.get('failed') is not True, facts


@pytest.mark.parametrize('option', ['lock_timeout_ms', 'statement_timeout_ms'])
def test_timeouts_must_be_positive(korrigo, option):
    korrigo.seed('locks')
    checksums = korrigo.checksums()
    result = korrigo.run('copylock', expired=True, **{option: 0})
    assert result.get('failed') is True and '%s must be a positive number' % option in result['msg'], result
    assert korrigo.checksums() == checksums


def test_every_session_starts_with_its_timeouts_and_without_jit(korrigo):
    """The startup options of module_utils/database take effect on the server (not only in the keywords): the
    waits are bounded from the first statement, and JIT is off (its compilation costs our one-pass statements more
    than it saves). Read in a process of its own, as a module's: module_utils stay out of this test process."""
    probe = """
import json, sys
from ansible_collections.korrigo.ops.plugins.module_utils.database import connect
conn = connect({'database_url': sys.argv[1], 'lock_timeout_ms': 1500, 'statement_timeout_ms': 45000}, 'korrigo.ops:test')
cur = conn.cursor()
cur.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), current_setting('jit')")
print(json.dumps(cur.fetchone()))
conn.close()
"""
    out = subprocess.run([sys.executable, '-c', probe, dsn_for(korrigo.name)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert json.loads(out) == ['1500ms', '45s', 'off']
