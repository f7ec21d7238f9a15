"""Hostile input without a database (hypothesis): module-side validation of ids, media containment, the
validate_inputs filter and the report filters never crash on arbitrary text and never let a bad value through."""
import math
import os
import uuid

import pytest

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ansible_collections.korrigo.ops.plugins.filter.imports import describe_pdf_problem  # noqa: E402
from ansible_collections.korrigo.ops.plugins.filter.inputs import validate_inputs  # noqa: E402
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError  # noqa: E402
from ansible_collections.korrigo.ops.plugins.module_utils.media import OutsideMediaRoot, resolve  # noqa: E402
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (  # noqa: E402
    require_selector, validate_uuids,
)

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.one_of(st.text(max_size=80), st.sampled_from([
    "'; DROP TABLE exams_copy; --", '1 OR 1=1', '%(actor_id)s', '%s', '$$', '\x00', '../../etc/passwd',
    '3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b\x00', ' 3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b ', 'Élève \u202e', '🎓' * 40]))
ANY = st.one_of(TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                st.lists(TEXT, max_size=3), st.dictionaries(TEXT, TEXT, max_size=2))


def canonical(value):
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        return None


@FAST
@given(values=st.lists(st.one_of(TEXT, st.uuids().map(str)), max_size=5))
def test_validate_uuids_normalises_or_refuses_clearly(values):
    """Matrix: arbitrary and SQL-looking strings as copy ids (hypothesis) | every id is a canonical UUID or the
    module refuses with "malformed copy id" before connecting"""
    try:
        result = validate_uuids(values)
    except KorrigoError as err:
        assert 'malformed copy id' in err.msg
        assert any(canonical(str(v)) is None for v in values)
        return
    assert all(canonical(v) == v for v in result)
    assert len(result) <= len(values)


@FAST
@given(values=st.lists(st.one_of(TEXT, st.uuids().map(str), st.uuids().map(lambda u: str(u).upper())), max_size=4))
def test_the_role_check_and_the_module_agree_on_every_id_list(values):
    """Matrix: id lists the role checks before its first change, then the module checks again (hypothesis) | the
    role's validate_inputs refuses exactly the lists the module's validate_uuids refuses, so no malformed id
    reaches a module after an earlier step committed"""
    role_refuses = bool(validate_inputs({'ids': values}, {'ids': 'uuid_list'}))
    try:
        validate_uuids(values)
        module_refuses = False
    except KorrigoError:
        module_refuses = True
    assert role_refuses == module_refuses, values


@FAST
@given(value=ANY)
def test_validate_inputs_never_crashes_and_rejects_what_is_not_a_uuid(value):
    """Matrix: any value for each kind of role input (hypothesis) | validate_inputs returns problems naming the
    input, never raises; a non-UUID id list, a non-finite number or a relative path is always a problem"""
    rules = {'ids': 'uuid_list', 'n': {'type': 'int', 'min': 1}, 'f': {'type': 'number', 'min': 0},
             'p': 'path', 'u': {'type': 'url', 'schemes': ['redis', 'rediss']}, 'r': 'reason', 'b': 'bool',
             'e': {'type': 'enum', 'choices': ['clamp', 'delete']}, 'c': {'type': 'id_list', 'required': True}}
    problems = validate_inputs(dict((name, value) for name in rules), rules)
    assert all(isinstance(p, str) and p.split()[0].rstrip(':') in rules for p in problems)
    if isinstance(value, float) and not math.isfinite(value):
        assert any(p.startswith('f must be a finite number') for p in problems)
    if isinstance(value, str) and value and not value.startswith('/'):
        assert any(p.startswith('p ') for p in problems)
    if isinstance(value, str) and "DROP" in value:
        assert any(p.startswith('ids:') for p in problems)


@FAST
@given(path=TEXT)
def test_media_paths_never_resolve_outside_the_root(tmp_path_factory, path):
    """Matrix: arbitrary, traversal and NUL paths and symlinks out of the media root (hypothesis) | resolve()
    refuses them (OutsideMediaRoot) or returns a path inside the root"""
    base = tmp_path_factory.mktemp('media')
    root = str(base / 'media')
    os.mkdir(root)
    os.symlink('/etc', os.path.join(root, 'escape'))
    for candidate in (path, 'escape/' + path, '../' + path):
        try:
            _rel, real = resolve(os.path.realpath(root), candidate)
        except (OutsideMediaRoot, ValueError):
            continue
        real_root = os.path.realpath(root)
        assert real == real_root or real.startswith(real_root + os.sep)


@FAST
@given(selectors=st.dictionaries(st.sampled_from(['copy_ids', 'expired', 'all_copies']),
                                 st.one_of(st.none(), st.just(False), st.just([]), st.just(''), st.just({}))))
def test_an_empty_selector_is_always_refused(selectors):
    """Matrix: selectors all empty, false or null (hypothesis) | require_selector refuses to act on everything"""
    with pytest.raises(KorrigoError, match='empty selector'):
        require_selector(selectors, 'give copy_ids')


@FAST
@given(name=st.one_of(st.none(), TEXT), verdict=TEXT)
def test_report_lines_carry_unicode_and_quotes_as_text(name, verdict):
    """Matrix: unicode, quotes and NULL anonymous ids in report lines (hypothesis) | the filter returns the text
    unchanged in one line, never raises"""
    line = describe_pdf_problem({'anonymous_id': name, 'copy_id': 'c1', 'verdict': verdict})
    assert isinstance(line, str) and (name or 'c1') in line and verdict in line
