"""filter/audit.py: the audit_events report's lines, with the creation rules of module_utils/creation.py."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.audit import audit_found, describe_gaps, expected_events

RESULT = {
    'korrigo_version': 'head', 'copies_checked': 12, 'copies_with_gaps': 2,
    'copies_by_creation_path': {'batch': 8, 'individual': 1, 'import': 2, 'merge': 1},
    'gap_counts': {'missing_import': 1, 'missing_validate': 0, 'missing_finalize': 1},
    'normal_repeats': {'copies_with_failed_attempts': 2, 'success_hidden_by_get_or_create': 1,
                       'copies_with_repeated_annotation_events': 1, 'playbook_duplicate_groups': 5},
    'gaps': [],
}


def test_found_lines():
    found = audit_found(RESULT)
    assert found[:2] == ['12 copies checked, 2 with gaps',
                         'copies by creation path: batch: 8, individual: 1, import: 2, merge: 1']
    assert found[3:5] == ['missing_import: 1', 'missing_finalize: 1']
    assert found[5].startswith('normal, not gaps: 2 copies with failed finalize attempts, 1 successes hidden')
    with pytest.raises(AnsibleFilterError):
        audit_found({'copies_checked': 1})


def test_expected_events_follow_the_creation_rules_of_each_version():
    assert expected_events('head') == ('events expected by creation path on head: IMPORT from import; '
                                       'VALIDATE past STAGING from individual, import; none from batch, merge')
    assert 'VALIDATE past STAGING from batch, individual, import; none from merge' in expected_events('8f16b75')


def test_gap_lines_have_a_header_only_when_there_are_gaps():
    gap = {'anonymous_id': 'IMPORT-1', 'status': 'READY', 'creation_path': 'import', 'kind': 'missing_import',
           'missing': 'IMPORT event', 'rule': 'import_pdf copies have an IMPORT event', 'noted': False}
    lines = describe_gaps([gap])
    assert lines[0].startswith('investigate each gap') and len(lines) == 2
    assert lines[1] == 'IMPORT-1 | READY | import | missing_import | IMPORT event | import_pdf copies have an IMPORT event'
    assert describe_gaps([]) == []
