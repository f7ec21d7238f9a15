"""copy_import's pure logic: selectors and Korrigo's page paths."""
import pytest

from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.modules import copy_import


def test_copy_import_refuses_an_empty_selector_and_bad_ids():
    base = {'stuck': False, 'copy_ids': [], 'max_changes': 10, 'stuck_after_minutes': 5, 'rasterize_timeout': 60}
    with pytest.raises(KorrigoError, match='empty selector'):
        copy_import.validate(base)
    with pytest.raises(KorrigoError, match='malformed'):
        copy_import.validate(dict(base, copy_ids=['x']))
    assert copy_import.validate(dict(base, stuck=True)) == []


def test_page_paths_are_korrigos():
    assert copy_import.page_paths('abc', 2) == ['copies/pages/abc/p000.png', 'copies/pages/abc/p001.png']
