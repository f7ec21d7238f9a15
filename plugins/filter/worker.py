# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in worker_actions.yml and worker_todo.yml next to this file: what a celery_health step (start or
# restart the Celery worker) did and left to a human, in the words of the import_stuck and high_latency reports.

from ansible.errors import AnsibleFilterError

HELD_BACK = ('nothing else was changed (no copy repaired, no cleanup) while no worker answers: run this again '
             'once it does')


def worker_actions(result, default_target=''):
    """The report action of a celery_health step: one entry when it started or restarted the worker, else none."""
    if not isinstance(result, dict):
        raise AnsibleFilterError("worker_actions expects the registered result of korrigo.ops.celery_health")
    action = result.get('action') or 'none'
    if action == 'none':
        return []
    target = (result.get('service') or {}).get('unit') or default_target
    return [{'kind': 'worker_%s' % action, 'anonymous_id': target}]


def worker_todo(manual='', failure='', held_back=False):
    """Lines for a human after a worker step: the step to do by hand, why acting failed, and (``held_back``) that
    the rest of the remediation waited for the worker."""
    return ([manual] if manual else []) + ([failure] if failure else []) + ([HELD_BACK] if held_back else [])


class FilterModule(object):
    def filters(self):
        return {'worker_actions': worker_actions, 'worker_todo': worker_todo}
