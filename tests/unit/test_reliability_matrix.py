"""docs/reliability.md is exactly what tests/reliability_matrix.py generates from the tests' Matrix: lines."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load():
    path = os.path.join(ROOT, 'tests', 'reliability_matrix.py')
    spec = importlib.util.spec_from_file_location('reliability_matrix', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_matrix_is_the_generated_one():
    matrix = load()
    with open(os.path.join(ROOT, 'docs', 'reliability.md')) as handle:
        committed = handle.read()
    assert committed == matrix.render(), 'docs/reliability.md is out of date: run python3 tests/reliability_matrix.py'


def test_every_row_has_a_fault_an_expectation_and_a_test():
    rows = load().collect()
    assert len(rows) >= 12
    for row in rows:
        assert row['fault'] and row['expected'] != '(missing)' and row['observed'], row
        assert row['test'].split('::')[1].startswith('test_')
    faults = ' '.join(r['fault'] for r in rows)
    for needle in ('terminated', 'Redis down', 'worker killed', 'disk full', 'NaN', 'SQL-looking', 'symlinks',
                   'malformed UUID'):
        assert needle in faults, needle


def test_xfail_tests_are_shown_as_not_holding(tmp_path):
    matrix = load()
    (tmp_path / 'tests' / 'unit').mkdir(parents=True)
    (tmp_path / 'tests' / 'integration').mkdir(parents=True)
    for rel in matrix.MATRIX_FILES:
        (tmp_path / rel).write_text('')
    (tmp_path / matrix.MATRIX_FILES[0]).write_text(
        'import pytest\n\n'
        '@pytest.mark.xfail(strict=True, reason="bug 7")\n'
        'def test_a(korrigo):\n    """Matrix: fault A | holds A"""\n    assert 1 == 2\n\n'
        'def test_b():\n    """Matrix: input | B a|b\n    continued\n\n    other"""\n    assert True\n'
        '\ndef test_not_in_matrix():\n    assert True\n')
    rows = matrix.collect(str(tmp_path))
    assert [r['fault'] for r in rows] == ['fault A', 'input']
    assert rows[0]['observed'].startswith('does NOT hold yet') and 'bug 7' in rows[0]['observed']
    assert rows[0]['versions'] == 'head, 8f16b75' and rows[1]['versions'] == 'no database'
    assert rows[1]['expected'] == 'B a|b continued'
    assert '\\|' in matrix.cell('a|b')
