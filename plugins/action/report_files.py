# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""report_files' action: on a local connection without become (the fleet summary, delegated to localhost; a
controller that is the Korrigo host) the target's files are the controller's, so the files are written here, by the
module's own code, without a module process (about 0.3 s a call, which is most of a report's cost). Anywhere else
the module runs on the target as usual."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.report_files import ARGUMENT_SPEC, write_reports

OCTAL_MODE = re.compile(r'^0?[0-7]{3,4}$')
LOCAL_TRANSPORTS = ('local', 'ansible.builtin.local', 'ansible.legacy.local')


def octal_mode(mode):
    """The mode as a number when it is plain octal ('0640', '640' or an int); None for anything else (symbolic
    modes go to the module, which knows them all)."""
    if isinstance(mode, int) and not isinstance(mode, bool):
        return mode
    if isinstance(mode, str) and OCTAL_MODE.match(mode):
        return int(mode, 8)
    return None


class ControllerWriter(object):
    """What write_reports needs of an AnsibleModule, on the controller."""

    def __init__(self, params, check_mode, diff):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff

    def atomic_move(self, src, dest):
        os.replace(src, dest)

    def set_mode_if_different(self, path, mode, changed):
        wanted = octal_mode(mode)
        if (os.stat(path).st_mode & 0o7777) != wanted:
            os.chmod(path, wanted)
            return True
        return changed


def writes_on_controller(connection, play_context, task, args):
    """True when the target's files are this machine's: a local connection, no become, no async, plain octal
    modes (symbolic ones are left to the module, which knows them all)."""
    return (getattr(connection, 'transport', None) in LOCAL_TRANSPORTS
            and not play_context.become
            and not task.async_val
            and octal_mode(args.get('mode', '0640')) is not None
            and octal_mode(args.get('directory_mode', '0750')) is not None)


def write_on_controller(args, check_mode, diff):
    """The report_files module's result for ``args``, written here by its own code."""
    validated = ArgumentSpecValidator(ARGUMENT_SPEC).validate(args)
    if validated.error_messages:
        return dict(failed=True, msg='; '.join(validated.error_messages))
    try:
        return write_reports(ControllerWriter(validated.validated_parameters, check_mode, diff))
    except KorrigoError as err:
        return dict(failed=True, msg=err.msg)
    except (IOError, OSError) as err:
        return dict(failed=True, msg='cannot write the report files: %s' % err)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no effect since Ansible 2.6
        if writes_on_controller(self._connection, self._play_context, self._task, self._task.args):
            result.update(write_on_controller(self._task.args, bool(self._task.check_mode), bool(self._task.diff)))
        else:
            result.update(self._execute_module(module_name='korrigo.ops.report_files', module_args=self._task.args,
                                               task_vars=task_vars))
        return result
