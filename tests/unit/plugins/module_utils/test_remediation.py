import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import remediation
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    ConcurrentRun, Remediation, check_max_changes, check_positive_max_changes, require_selector,
    run_module, validate_uuids,
)

HEAD_PROBE = dict(has_copy=True, has_copylock=True, has_auditlog=True, has_subject_variant=True, has_score=True)


class FakeCursor(object):
    def __init__(self, rows):
        self.rows = list(rows)
        self.executed = []

    def execute(self, statement, params=None):
        self.executed.append((statement, params))

    def fetchone(self):
        return self.rows.pop(0)


class FakeConnection(object):
    def __init__(self, rows):
        self.cursor_ = FakeCursor(rows)
        self.commits = self.rollbacks = 0
        self.closed = False

    def commit(self):
        self.commits += 1

    def rollback(self):
        self.rollbacks += 1

    def close(self):
        self.closed = True


@pytest.fixture
def fake_db(monkeypatch):
    def install(preamble):
        conn = FakeConnection([HEAD_PROBE, preamble])
        monkeypatch.setattr(remediation, 'connect', lambda params, name: conn)
        monkeypatch.setattr(remediation, 'dict_cursor', lambda c: c.cursor_)
        return conn
    return install


PARAMS = {'remediation_user': 'korrigo-ops', 'audit_ip_address': '127.0.0.1'}


def test_real_run_commits(fake_db):
    conn = fake_db({'locked': True, 'actor_id': 7})
    with Remediation(PARAMS, 'copylock', check_mode=False) as rem:
        assert rem.actor_id == 7 and rem.rules['name'] == 'head'
    assert (conn.commits, conn.rollbacks, conn.closed) == (1, 0, True)


def test_check_mode_rolls_back(fake_db):
    conn = fake_db({'locked': True, 'actor_id': 7})
    with Remediation(PARAMS, 'copylock', check_mode=True):
        pass
    assert (conn.commits, conn.rollbacks) == (0, 1)


def test_error_inside_rolls_back(fake_db):
    conn = fake_db({'locked': True, 'actor_id': 7})
    with pytest.raises(KorrigoError):
        with Remediation(PARAMS, 'copylock', check_mode=False):
            raise KorrigoError('boom')
    assert (conn.commits, conn.rollbacks) == (0, 1)


def test_concurrent_run_is_detected_and_nothing_is_kept(fake_db):
    conn = fake_db({'locked': False, 'actor_id': 7})
    with pytest.raises(ConcurrentRun):
        with Remediation(PARAMS, 'copylock', check_mode=False):
            pytest.fail('body must not run')
    assert (conn.commits, conn.rollbacks, conn.closed) == (0, 1, True)


def test_unknown_remediation_user_is_refused(fake_db):
    fake_db({'locked': True, 'actor_id': None})
    with pytest.raises(KorrigoError, match="remediation user 'korrigo-ops' does not exist"):
        with Remediation(PARAMS, 'copylock', check_mode=False):
            pass


def test_advisory_lock_is_per_remediation(fake_db):
    conn = fake_db({'locked': True, 'actor_id': 1})
    with Remediation(PARAMS, 'copylock', check_mode=False):
        pass
    statement, params = conn.cursor_.executed[1]
    assert 'pg_try_advisory_xact_lock' in statement
    assert params['remediation'] == 'copylock' and params['namespace'] == 'korrigo.ops'


def test_uuids_are_normalised_and_deduplicated():
    upper = '0B8F3C52-5E1E-4F57-8A55-5D0C2A8B1F3E'
    assert validate_uuids([upper, upper.lower()]) == [upper.lower()]


@pytest.mark.parametrize('bad', ['nope', '1234', '', "x' OR 1=1 --", None])
def test_malformed_uuids_are_refused(bad):
    with pytest.raises(KorrigoError, match='malformed copy id'):
        validate_uuids([bad])


@pytest.mark.parametrize('selectors', [{'expired': False, 'copy_ids': []}, {'a': None, 'b': ''}])
def test_empty_selector_is_refused(selectors):
    with pytest.raises(KorrigoError, match='empty selector'):
        require_selector(selectors, 'hint')


def test_one_selector_is_enough():
    require_selector({'expired': True, 'copy_ids': []}, 'hint')


def test_max_changes_guard():
    check_max_changes(5, 5)
    with pytest.raises(KorrigoError, match='more than max_changes=4: nothing was written') as err:
        check_max_changes(5, 4)
    assert err.value.details['would_change'] == 5
    with pytest.raises(KorrigoError, match='positive'):
        check_positive_max_changes(0)


class FakeModule(object):
    def __init__(self, lock_wait='skip'):
        self.params = {'lock_wait': lock_wait}
        self.result = None

    def exit_json(self, **kw):
        self.result = ('exit', kw)
        raise SystemExit(0)

    def fail_json(self, **kw):
        self.result = ('fail', kw)
        raise SystemExit(1)


def raise_(exc):
    raise exc


@pytest.mark.parametrize('lock_wait,kind', [('skip', 'exit'), ('fail', 'fail')])
def test_run_module_concurrent_run(lock_wait, kind):
    module = FakeModule(lock_wait)
    with pytest.raises(SystemExit):
        run_module(module, lambda: raise_(ConcurrentRun('busy')))
    assert module.result[0] == kind
    if kind == 'exit':
        assert module.result[1] == {'changed': False, 'skipped_concurrent_run': True, 'msg': 'busy'}


def test_run_module_turns_errors_into_fail_json():
    module = FakeModule()
    with pytest.raises(SystemExit):
        run_module(module, lambda: raise_(KorrigoError('bad thing', unknown_copy_ids=['x'])))
    assert module.result == ('fail', {'msg': 'bad thing', 'unknown_copy_ids': ['x']})
