# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmarks only: each task's wall time per host, written as JSON to $KORRIGO_BENCH_TASK_TIMES at the end of the
run. The playbook is timed with the default stdout callback, as users run it; this one only notes start and end
times (the json callback would serialize every result, which costs the run more than the tasks it measures)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: task_times
type: aggregate
short_description: Task durations for the benchmarks
description:
  - Writes [{task, action, host, seconds}] to the file named by the environment variable KORRIGO_BENCH_TASK_TIMES.
requirements:
  - enabled in callbacks_enabled
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = {}
        self._times = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[task._uuid] = time.time()

    def _done(self, result):
        task = result._task
        began = self._started.get(task._uuid)
        if began is not None:
            self._times.append({'task': task.get_name(), 'action': task.action, 'host': result._host.get_name(),
                                'seconds': round(time.time() - began, 4)})

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _done

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('KORRIGO_BENCH_TASK_TIMES')
        if path:
            with open(path, 'w') as out:
                json.dump(self._times, out)
