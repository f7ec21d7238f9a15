"""The error edge: KorrigoError, run_module, the collection's version (one home, equal to galaxy.yml's)."""
import os

import pytest
import yaml

from ansible_collections.korrigo.ops.plugins.module_utils import errors
from ansible_collections.korrigo.ops.plugins.module_utils.errors import (
    COLLECTION_VERSION, USER_AGENT, ConcurrentRun, KorrigoError, run_module,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


class Exited(Exception):
    pass


class FakeModule(object):
    def __init__(self, **params):
        self.params = params
        self.result = None

    def exit_json(self, **result):
        self.result = dict(result)
        raise Exited()

    def fail_json(self, **result):
        self.result = dict(result, failed=True)
        raise Exited()


def edge(module, body):
    with pytest.raises(Exited):
        run_module(module, body)
    return module.result


def test_collection_version_is_galaxy_version():
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        galaxy = yaml.safe_load(handle)
    assert COLLECTION_VERSION == str(galaxy['version'])


def test_user_agent_carries_the_collection_version():
    assert USER_AGENT == 'korrigo.ops/%s (ansible)' % COLLECTION_VERSION


def test_old_import_paths_still_work_for_the_transition():
    from ansible_collections.korrigo.ops.plugins.module_utils import database, remediation
    assert database.KorrigoError is KorrigoError
    assert remediation.run_module is run_module and remediation.ConcurrentRun is ConcurrentRun
    assert remediation.USER_AGENT == USER_AGENT


def test_errors_module_pulls_in_neither_the_database_nor_the_write_layer():
    with open(errors.__file__) as handle:
        source = handle.read()
    imports = [line for line in source.splitlines() if line.startswith(('from ', 'import '))]
    assert imports == ['from __future__ import absolute_import, division, print_function']


def test_result_is_exited_with():
    assert edge(FakeModule(), lambda: {'changed': True, 'count': 2}) == {'changed': True, 'count': 2}


def test_korrigo_error_fails_with_its_message_and_details():
    def body():
        raise KorrigoError('exams_copy busy: held by pid 7', lock_timeout_ms=1000, exception='trace')
    result = edge(FakeModule(), body)
    assert result == {'failed': True, 'msg': 'exams_copy busy: held by pid 7', 'lock_timeout_ms': 1000,
                      'exception': 'trace'}


@pytest.mark.parametrize('lock_wait,failed', [('skip', False), ('fail', True), (None, False)])
def test_concurrent_run_skips_or_fails(lock_wait, failed):
    def body():
        raise ConcurrentRun('another run of copylock holds its advisory lock')
    result = edge(FakeModule(lock_wait=lock_wait), body)
    assert result.get('failed', False) is failed
    assert result['msg'] == 'another run of copylock holds its advisory lock'
    if not failed:
        assert result['skipped_concurrent_run'] is True and result['changed'] is False


def test_other_exceptions_are_not_swallowed():
    with pytest.raises(ZeroDivisionError):
        run_module(FakeModule(), lambda: 1 / 0)
