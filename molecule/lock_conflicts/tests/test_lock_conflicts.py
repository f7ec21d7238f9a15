# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After release_expired_locks.yml: exactly the expired locks are gone, with Korrigo's trail.

Fixtures (db, seeded, snapshots, uuid_array) come from molecule/shared/korrigo_molecule.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

ACTOR = 'korrigo-ops'
AUDIT_ACTION = 'korrigo_ops.copylock.release'


@pytest.fixture(name='locks')
def locks_fixture(seeded):
    return seeded['locks']


@pytest.fixture(name='expired')
def expired_fixture(locks, uuid_array):
    assert len(locks['expired_copy_ids']) == 5, 'the locks seed scenario should create 5 expired locks'
    return uuid_array(locks['expired_copy_ids'])


@pytest.fixture(name='active')
def active_fixture(locks, uuid_array):
    assert len(locks['active_copy_ids']) == 2, 'the locks seed scenario should create 2 active locks'
    return uuid_array(locks['active_copy_ids'])


def test_expired_locks_are_released(db, expired):
    assert db.scalar('SELECT count(*) FROM grading_copylock WHERE copy_id = ANY(%s)' % expired) == 0


def test_expired_copies_are_ready_and_unlocked(db, expired, locks):
    rows = db.rows('SELECT id::text AS copy_id, status, locked_at, locked_by_id FROM exams_copy '
                   'WHERE id = ANY(%s) ORDER BY id' % expired)
    assert sorted(r['copy_id'] for r in rows) == sorted(locks['expired_copy_ids'])
    for row in rows:
        assert row == {'copy_id': row['copy_id'], 'status': 'READY', 'locked_at': None, 'locked_by_id': None}


def test_one_unlock_event_by_korrigo_ops_per_released_lock(db, expired, locks):
    rows = db.rows("SELECT e.copy_id::text AS copy_id, count(*) AS events, "
                   "       bool_and(u.username = '%s') AS by_korrigo_ops "
                   "  FROM grading_gradingevent e LEFT JOIN auth_user u ON u.id = e.actor_id "
                   " WHERE e.action = 'UNLOCK' AND e.copy_id = ANY(%s) GROUP BY e.copy_id" % (ACTOR, expired))
    assert sorted(r['copy_id'] for r in rows) == sorted(locks['expired_copy_ids'])
    assert all(r['events'] == 1 and r['by_korrigo_ops'] for r in rows), rows


def test_only_the_released_locks_have_unlock_events_by_korrigo_ops(db, expired):
    assert db.scalar("SELECT count(*) FROM grading_gradingevent e JOIN auth_user u ON u.id = e.actor_id "
                     " WHERE e.action = 'UNLOCK' AND u.username = '%s' AND NOT e.copy_id = ANY(%s)"
                     % (ACTOR, expired)) == 0


def test_one_audit_row_per_released_lock(db, locks):
    rows = db.rows("SELECT a.resource_id, a.resource_type, u.username FROM core_auditlog a "
                   "  LEFT JOIN auth_user u ON u.id = a.user_id WHERE a.action = '%s'" % AUDIT_ACTION)
    assert sorted(r['resource_id'] for r in rows) == sorted(locks['expired_copy_ids'])
    assert all(r['resource_type'] == 'Copy' and r['username'] == ACTOR for r in rows), rows


def test_active_locks_and_their_copies_are_untouched(db, snapshots, locks):
    before = snapshots['active_locks']
    assert sorted(r['copy_id'] for r in before['rows']) == sorted(locks['active_copy_ids'])
    assert all(r['status'] == 'LOCKED' and r['lock_id'] is not None for r in before['rows']), before['rows']
    assert db.rows(before['query']) == before['rows']


def test_active_locks_have_no_trail(db, active):
    assert db.scalar("SELECT count(*) FROM grading_gradingevent WHERE action = 'UNLOCK' AND copy_id = ANY(%s)"
                     % active) == 0
    assert db.scalar("SELECT count(*) FROM core_auditlog WHERE action = '%s' AND resource_id = ANY((%s)::text[])"
                     % (AUDIT_ACTION, active)) == 0


def test_teachers_drafts_are_kept(db, locks, uuid_array):
    assert locks['draft_copy_ids'], 'the locks seed scenario should create drafts'
    assert db.scalar('SELECT count(DISTINCT copy_id) FROM grading_draftstate WHERE copy_id = ANY(%s)'
                     % uuid_array(locks['draft_copy_ids'])) == len(set(locks['draft_copy_ids']))
