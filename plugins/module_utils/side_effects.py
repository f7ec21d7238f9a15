# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard of every change made outside SQL: files removed or moved, Celery tasks queued, workers restarted.

The same guard as a SQL remediation (``Remediation``): one transaction holding this remediation's advisory lock
(another run holding it means ``skipped_concurrent_run``), the actor (``remediation_user``) looked up, the planned
number of actions checked against ``max_changes`` before the first side effect, and one ``core_auditlog`` row
per action performed, written in that transaction and committed once the side effects are done. When an action
fails, the rows of the actions already performed are committed (they happened), then the module fails naming
them. In check mode the actions are planned and counted, nothing is performed and no row is written::

    with SideEffects(module.params, 'media_storage', module.check_mode) as guard:
        guard.plan(len(planned))                      # max_changes, before anything happens
        for rel in planned:
            guard.perform('korrigo_ops.media_storage.remove', 'TempUpload', rel,
                          lambda: remove(rel), before={'path': rel})

``effect`` returns a dict (what was done: it becomes the row's ``after``, merged into its metadata) or True;
None or False means the resource no longer qualified and nothing was done (no row).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import getpass
import json
import socket

from ansible_collections.korrigo.ops.plugins.module_utils.database import jsonable
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    Remediation, check_max_changes, check_positive_max_changes,
)

ACTION_PREFIX = 'korrigo_ops.'
# core_auditlog's column sizes (both Korrigo versions): longer values are cut, the full value stays in metadata.
ACTION_MAX = 100
RESOURCE_TYPE_MAX = 50
RESOURCE_ID_MAX = 255

INSERT_AUDIT_SQL = """
INSERT INTO core_auditlog ("timestamp", student_id, action, resource_type, resource_id, ip_address, user_agent,
                           metadata, user_id)
SELECT now(), NULL, r.action, r.resource_type, r.resource_id, %(audit_ip)s::inet, %(user_agent)s, r.metadata,
       %(actor_id)s
  FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(action text, resource_type text, resource_id text, metadata jsonb)
RETURNING id
"""


def run_by():
    """Who ran the module, as the host running it sees it (the actor is remediation_user)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container, no LOGNAME: not a reason to fail a remediation
        user = None
    return {'os_user': user, 'host': socket.gethostname()}


class SideEffects(object):
    """Context manager guarding actions performed outside the database (see the module docstring).

    ``tables`` are the tables the guard's own statements may wait on (named when a lock wait times out).
    """

    def __init__(self, params, name, check_mode, application_name=None,
                 tables=('core_auditlog', 'auth_user'), remediation_class=Remediation):
        self.params = params
        self.name = name
        self.check_mode = check_mode
        self.remediation = remediation_class(params, name, check_mode, application_name=application_name,
                                             need_actor=True, tables=tables)
        self.planned = None
        self.records = []      # one per action performed (or that would be, in check mode)
        self.failed = None     # the action that failed, when one did
        self.audit_ids = []
        self.committed = False

    # -- the transaction ---------------------------------------------------------------------------------
    def __enter__(self):
        check_positive_max_changes(self.params.get('max_changes'))
        self.remediation.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.remediation.conn is None:
            return False
        performed = [r for r in self.records if r['performed']]
        if self.check_mode or not performed:
            self.remediation._close(commit=False)
            return False
        # Side effects happened (all of them, or some before a failure): their rows are committed either way.
        try:
            self._write_rows(performed)
        except KorrigoError as err:
            self.remediation._close(commit=False)
            raise KorrigoError("%s performed %d action(s) but could not record them in core_auditlog: %s; "
                               "performed: %s" % (self.name, len(performed), err.msg, self.describe(performed)),
                               performed=self.summary(performed))
        try:
            self.remediation._close(commit=True)
        except KorrigoError as err:
            raise KorrigoError("%s performed %d action(s) but their core_auditlog rows could not be committed: "
                               "%s; performed: %s" % (self.name, len(performed), err.msg, self.describe(performed)),
                               performed=self.summary(performed))
        self.committed = True
        return False

    def _write_rows(self, performed):
        rows = [{
            'action': r['action'][:ACTION_MAX],
            'resource_type': r['resource_type'][:RESOURCE_TYPE_MAX],
            'resource_id': r['resource_id'][:RESOURCE_ID_MAX],
            'metadata': r['metadata'],
        } for r in performed]
        params = self.remediation.trail_params(rows=json.dumps(jsonable(rows)))
        self.audit_ids = [row['id'] for row in self.remediation.fetchall(INSERT_AUDIT_SQL, params)]

    # -- planning and acting -----------------------------------------------------------------------------
    @property
    def actor_id(self):
        return self.remediation.actor_id

    @property
    def rules(self):
        return self.remediation.rules

    def fetchall(self, statement, params):
        """A read in the guard's transaction (under its advisory lock)."""
        return self.remediation.fetchall(statement, params)

    def plan(self, count):
        """The number of actions this run will perform, refused above max_changes before any side effect."""
        check_max_changes(count, self.params.get('max_changes'))
        self.planned = count

    def perform(self, action, resource_type, resource_id, effect, before=None, metadata=None):
        """Perform one planned action (not in check mode) and record it; returns its record, or None when the
        resource no longer qualified. A failing effect fails the run; the actions already performed are
        recorded (see __exit__)."""
        if self.planned is None:
            raise KorrigoError("%s: internal error, an action was performed before it was planned" % self.name)
        if len(self.records) >= self.planned:
            raise KorrigoError("%s: internal error, more actions than the %d planned" % (self.name, self.planned))
        if not action.startswith(ACTION_PREFIX):
            action = ACTION_PREFIX + action
        record = {
            'action': action,
            'resource_type': str(resource_type),
            'resource_id': str(resource_id),
            'performed': False,
            'metadata': dict(metadata or {}, remediation=self.name, resource_id=str(resource_id),
                             actor=self.params.get('remediation_user'), run_by=run_by(),
                             before=before, after=None),
        }
        if self.check_mode:
            self.records.append(record)
            return record
        try:
            outcome = effect()
        except Exception as err:  # pylint: disable=broad-except
            # any failure of the side effect stops the run
            self.failed = dict(action=action, resource_type=record['resource_type'],
                               resource_id=record['resource_id'],
                               error=err.msg if isinstance(err, KorrigoError) else str(err))
            performed = [r for r in self.records if r['performed']]
            raise KorrigoError("%s on %s %s failed after %d of %d planned action(s): %s%s" % (
                action, record['resource_type'], record['resource_id'], len(performed), self.planned,
                self.failed['error'],
                '; performed and recorded: %s' % self.describe(performed) if performed else '; nothing was done'),
                performed=self.summary(performed), failed_action=self.failed)
        if not outcome:
            return None
        record['performed'] = True
        if isinstance(outcome, dict):
            record['metadata']['after'] = jsonable(outcome)
        else:
            record['metadata']['after'] = True
        self.records.append(record)
        return record

    # -- reporting ---------------------------------------------------------------------------------------
    @staticmethod
    def summary(records):
        return [{'action': r['action'], 'resource_type': r['resource_type'], 'resource_id': r['resource_id']}
                for r in records]

    @staticmethod
    def describe(records, limit=10):
        shown = ', '.join('%s %s' % (r['action'].rsplit('.', 1)[-1], r['resource_id']) for r in records[:limit])
        if len(records) > limit:
            shown += ' and %d more' % (len(records) - limit)
        return shown or 'nothing'

    def result(self):
        """What the module returns about its guard: the audit actions written (or that would be)."""
        return {'audit_rows': len(self.audit_ids) if self.committed else 0,
                'audit_actions': sorted(set(r['action'] for r in self.records))}
