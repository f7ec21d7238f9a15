"""The creation-path rules (module_utils/creation.py): which path a copy came from, which events it must have."""

import datetime

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    CREATION_PATHS, CREATION_PATH_SQL, IMPORT_PREFIX, INDIVIDUAL_PREFIX, creation_path_of, expectation_params,
    expectation_rule, expectation_rules, expects_import, expects_validate,
)

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize('pdf_source, has_import, status, validated_at, path', [
    # import_pdf: its source PDF, or its IMPORT event (even if the PDF path was cleared)
    ('copies/source/copy_1.pdf', True, 'STAGING', None, 'import'),
    ('copies/source/copy_1.pdf', False, 'READY', NOW, 'import'),
    ('', True, 'GRADED', NOW, 'import'),
    (None, True, 'READY', None, 'import'),
    # individual upload (HEAD): its PDF under exams/individual/, whatever the status
    ('exams/individual/scan_00001.pdf', False, 'STAGING', None, 'individual'),
    ('exams/individual/scan_00001.pdf', False, 'READY', None, 'individual'),
    # merge: past STAGING, never validated
    ('', False, 'READY', None, 'merge'),
    (None, False, 'GRADED', None, 'merge'),
    # batch: everything else (HEAD auto-validated READY, 8f16b75 STAGING awaiting a person)
    ('', False, 'READY', NOW, 'batch'),
    ('', False, 'STAGING', None, 'batch'),
    (None, False, 'GRADED', NOW, 'batch'),
    ('booklets/elsewhere.pdf', False, 'LOCKED', NOW, 'batch'),
])
def test_creation_path_of(pdf_source, has_import, status, validated_at, path):
    assert creation_path_of(pdf_source, has_import, status, validated_at) == path


@pytest.mark.parametrize('path, version, imports, validates', [
    ('import', 'head', True, True),
    ('import', '8f16b75', True, True),
    ('batch', 'head', False, False),  # auto-validation writes no VALIDATE
    ('batch', '8f16b75', False, True),  # a person validates
    ('individual', 'head', False, True),  # only validate_copy leaves STAGING
    ('individual', '8f16b75', False, True),
    ('merge', 'head', False, False),
    ('merge', '8f16b75', False, False),
])
def test_expected_events_per_path_and_version(path, version, imports, validates):
    assert expects_import(path) is imports
    assert expects_validate(path, version) is validates
    assert (expectation_rule('IMPORT', path, version) is not None) is imports
    assert (expectation_rule('VALIDATE', path, version) is not None) is validates


def test_expectation_params_per_version():
    assert expectation_params('head') == {'import_expected_paths': ['import'],
                                          'validate_expected_paths': ['individual', 'import']}
    assert expectation_params('8f16b75') == {'import_expected_paths': ['import'],
                                             'validate_expected_paths': ['batch', 'individual', 'import']}


def test_rules_name_what_was_broken():
    assert expectation_rule('IMPORT', 'import', 'head') == 'import_pdf copies have an IMPORT event'
    assert expectation_rule('VALIDATE', 'batch', '8f16b75') == \
        '8f16b75 batch copies past STAGING were validated by a person (VALIDATE)'
    assert expectation_rule('VALIDATE', 'batch', 'head') is None
    assert set(expectation_rules('head')) == {('IMPORT', 'import'), ('VALIDATE', 'import'), ('VALIDATE', 'individual')}
    assert set(expectation_rules('8f16b75')) == set(expectation_rules('head')) | {('VALIDATE', 'batch')}
    with pytest.raises(ValueError):
        expectation_rule('FINALIZE', 'import', 'head')


def test_sql_rule_is_a_constant_over_the_same_prefixes():
    assert CREATION_PATHS == ('batch', 'individual', 'import', 'merge')
    for prefix in (IMPORT_PREFIX, INDIVIDUAL_PREFIX):
        assert "LIKE '%s%%%%'" % prefix in CREATION_PATH_SQL  # %% : composed into statements run with parameters
    for path in CREATION_PATHS:
        assert "'%s'" % path in CREATION_PATH_SQL
    assert '{' not in CREATION_PATH_SQL  # safe inside psycopg2 sql.SQL(...).format(...)
