# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_report: a role's report becomes its document, its files and its job artifacts in one task, on the
controller. Templating a report of a few thousand strings costs Ansible about 0.1 s per task that reads it; doing
the document, the three renderings and the set_stats data here reads it once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.plugins.filter.core import to_nice_json

from ansible_collections.korrigo.ops.plugins.action.report_files import write_on_controller, writes_on_controller
from ansible_collections.korrigo.ops.plugins.filter.report import (
    fleet_row_source, report_document, report_html, report_markdown,
)
from ansible_collections.korrigo.ops.plugins.module_utils.report_files import RUN_REPORT_ARGUMENT_SPEC

# What a job artifact leaves out with stats_details false.
DETAIL_KEYS = ('details', 'facts_before', 'facts_after')


def report_file_entries(document, host):
    """report_files' ``files`` for one document: this run's JSON, Markdown and HTML, and the latest copies."""
    files = document['files']
    base = '%s-%s' % (document['scenario'], host)
    return [
        dict(name=os.path.basename(files['json']), content=to_nice_json(document) + '\n',
             also_as=[base + '-latest.json', base + '.json']),
        dict(name=os.path.basename(files['markdown']), content=report_markdown(document),
             also_as=[base + '-latest.md']),
        dict(name=os.path.basename(files['html']), content=report_html(document),
             also_as=[base + '-latest.html']),
    ]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no effect since Ansible 2.6
        validated = ArgumentSpecValidator(RUN_REPORT_ARGUMENT_SPEC).validate(self._task.args)
        if validated.error_messages:
            result.update(failed=True, msg='; '.join(validated.error_messages))
            return result
        args = validated.validated_parameters
        host = args['host'] or (task_vars or {}).get('inventory_hostname')
        try:
            document = report_document(args['report'], host=host, started=args['started'],
                                       versions=args['versions'], report_dir=args['report_dir'] or None)
        except Exception as err:  # the filter's own errors name what is missing
            result.update(failed=True, msg='the report cannot be made into a document: %s' % err)
            return result
        result['changed'] = False  # a report is a record of the run, not a change to the school
        result['summary'] = fleet_row_source(document)
        result['summaries'] = dict(args['summaries'], **{document['scenario']: result['summary']})
        result['files'] = document.get('files')
        if args['report_dir']:
            written = self._write(args['report_dir'], report_file_entries(document, host), task_vars)
            if written.get('failed'):
                result.update(failed=True, msg=written.get('msg'))
                return result
            result['written'] = written.get('written', [])
        if args['stats']:
            artifact = document if args['stats_details'] else dict(
                (k, v) for k, v in document.items() if k not in DETAIL_KEYS)
            result['ansible_stats'] = {'data': {'korrigo_reports': {host: {document['scenario']: artifact}}},
                                       'per_host': False, 'aggregate': True}
        return result

    def _write(self, directory, files, task_vars):
        """The files on the target: here when the target is this machine (report_files' rule), else by the
        report_files module there."""
        module_args = dict(path=directory, files=files)
        if writes_on_controller(self._connection, self._play_context, self._task, module_args):
            return write_on_controller(module_args, bool(self._task.check_mode), False)
        return self._execute_module(module_name='korrigo.ops.report_files', module_args=module_args,
                                    task_vars=task_vars)
