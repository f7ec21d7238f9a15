import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.modules.copylock import validate

COPY = '0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e'


def params(**overrides):
    base = dict(expired=False, copy_ids=[], force=False, reason=None, max_changes=100)
    base.update(overrides)
    return base


def test_expired_alone_selects_all_expired():
    assert validate(params(expired=True)) == []


def test_copy_ids_alone_is_a_selector():
    assert validate(params(copy_ids=[COPY.upper()])) == [COPY]


@pytest.mark.parametrize('overrides,message', [
    ({}, 'empty selector'),
    ({'copy_ids': []}, 'empty selector'),
    ({'expired': True, 'force': True, 'reason': 'r'}, 'needs explicit copy_ids'),
    ({'copy_ids': [COPY], 'force': True}, 'needs a reason'),
    ({'copy_ids': ['not-a-uuid']}, 'malformed copy id'),
    ({'expired': True, 'max_changes': 0}, 'positive'),
])
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(KorrigoError, match=message):
        validate(params(**overrides))
