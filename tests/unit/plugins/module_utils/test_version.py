import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.version import rules_from_probe

PROBE = dict(has_copy=True, has_copylock=True, has_auditlog=True, has_subject_variant=True, has_score=True)


def test_head_is_detected_from_its_columns():
    rules = rules_from_probe(PROBE)
    assert rules['name'] == 'head'
    assert rules['finalize_accepts'] == ['READY', 'GRADING_FAILED']
    assert rules['lock_workflow'] is False


def test_8f16b75_has_the_lock_workflow():
    rules = rules_from_probe(dict(PROBE, has_subject_variant=False, has_score=False))
    assert rules['name'] == '8f16b75'
    assert rules['finalize_accepts'] == ['LOCKED', 'GRADING_FAILED']
    assert rules['lock_workflow'] is True


@pytest.mark.parametrize('missing', ['has_copy', 'has_copylock', 'has_auditlog'])
def test_a_database_without_korrigo_is_refused(missing):
    with pytest.raises(KorrigoError, match="does not hold Korrigo's schema"):
        rules_from_probe(dict(PROBE, **{missing: False}))


def test_returned_rules_are_copies():
    rules_from_probe(PROBE)['finalize_accepts'].append('X')
    assert rules_from_probe(PROBE)['finalize_accepts'] == ['READY', 'GRADING_FAILED']
