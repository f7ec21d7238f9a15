# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The error edge: the one exception inner code raises, and the one place a module fails.

Small on purpose: every module and module_utils file may import it without pulling in the database or the
write layers (kubernetes.core keeps the same split).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The collection's version, in one place (galaxy.yml's `version`; a unit test keeps them equal).
COLLECTION_VERSION = '0.3.0'
# What the audit rows this collection writes carry in core_auditlog.user_agent.
USER_AGENT = 'korrigo.ops/%s (ansible)' % COLLECTION_VERSION


class KorrigoError(Exception):
    """A failure a person can act on; only a module's edge (run_module) turns it into fail_json."""

    def __init__(self, msg, **details):
        super(KorrigoError, self).__init__(msg)
        self.msg = msg
        self.details = details


class ConcurrentRun(Exception):
    """Another run holds this remediation's advisory lock."""


def run_module(module, body):
    """Module edge: run ``body()`` and exit with its result; KorrigoError/ConcurrentRun become the failure or
    skip result. Only here does fail_json happen."""
    try:
        result = body()
    except ConcurrentRun as err:
        if module.params.get('lock_wait') == 'fail':
            module.fail_json(msg=str(err))
        module.exit_json(changed=False, skipped_concurrent_run=True, msg=str(err))
    except KorrigoError as err:
        extra = dict((k, v) for k, v in err.details.items() if k != 'exception')
        if 'exception' in err.details:
            extra['exception'] = err.details['exception']
        module.fail_json(msg=err.msg, **extra)
    module.exit_json(**result)
