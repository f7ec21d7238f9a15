# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""After diagnose_latency.yml with termination on: the blocker is gone and audited, the waiter got its lock,
the findings name the blocked session, the slow endpoint and the missing index.

Fixtures (db, seeded) come from molecule/shared/korrigo_molecule.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

AUDIT_ACTION = 'korrigo_ops.pg_sessions.terminate'


def kept(name):
    with open(os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], name)) as handle:
        return json.load(handle)


@pytest.fixture(name='sessions')
def sessions_fixture():
    return kept('sessions.json')


@pytest.fixture(name='report')
def report_fixture():
    return kept(os.path.join('reports', 'high_latency-korrigo-local.json'))


def test_blocker_was_terminated(db, sessions):
    assert db.scalar('SELECT count(*) FROM pg_stat_activity WHERE pid = %d' % sessions['blocker_pid']) == 0


def test_waiter_is_no_longer_blocked(db, sessions):
    assert db.scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'"
                     % sessions['waiter_pid']) == 0


def test_one_audit_row_for_the_terminated_session(db, sessions):
    rows = db.rows("SELECT a.resource_type, a.resource_id, a.metadata->>'application_name' AS app, u.username "
                   "FROM core_auditlog a JOIN auth_user u ON u.id = a.user_id WHERE a.action = '%s'" % AUDIT_ACTION)
    assert rows == [{'resource_type': 'PostgresSession', 'resource_id': str(sessions['blocker_pid']),
                     'app': 'korrigo-latency-blocker', 'username': 'korrigo-ops'}]


def test_no_data_changed_by_the_sessions(db, seeded, uuid_array):
    copy_id = seeded['latency']['contended_copy_id']
    assert db.scalar("SELECT status FROM exams_copy WHERE id = ANY(%s)" % uuid_array([copy_id])) == 'READY'


def test_findings_rank_the_causes(report):
    # The report of the last converge (idempotence) no longer sees the blocker; the first one's findings are in
    # the terminated action, the slow endpoint and the missing index stay.
    kinds = [f['kind'] for f in report['details']['findings']]
    assert 'slow_endpoint' in kinds and 'missing_index' in kinds
    slow = [f for f in report['details']['findings'] if f['kind'] == 'slow_endpoint']
    assert any('/api/_debug/slow/' in f['what'] for f in slow)
    assert [f['rank'] for f in report['details']['findings']] == list(range(1, len(kinds) + 1))
    missing = [f for f in report['details']['findings'] if f['kind'] == 'missing_index']
    assert 'CREATE INDEX CONCURRENTLY' in missing[0]['action']
