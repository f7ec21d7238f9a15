"""filter/imports.py: the report line for a stuck copy whose PDF cannot be imported."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.imports import describe_pdf_problem


def test_flagged_copy_line():
    assert describe_pdf_problem({'anonymous_id': 'IMPORT-9D1E0C11', 'verdict': 'encrypted'}) == \
        'IMPORT-9D1E0C11: PDF encrypted - ask for a re-upload'
    assert describe_pdf_problem({'copy_id': 'c1', 'verdict': 'missing'}).startswith('c1: PDF missing')
    with pytest.raises(AnsibleFilterError):
        describe_pdf_problem('x')
