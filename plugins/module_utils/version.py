# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which Korrigo runs behind a database, and the rules that version's code enforces."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

COPY_STATUSES = ('STAGING', 'READY', 'LOCKED', 'GRADING_IN_PROGRESS', 'GRADING_FAILED', 'GRADED')
EVENT_ACTIONS = ('IMPORT', 'VALIDATE', 'LOCK', 'UNLOCK', 'CREATE_ANN', 'UPDATE_ANN', 'DELETE_ANN',
                 'FINALIZE', 'EXPORT')

# Read from Korrigo's services (see the schema facts): HEAD dropped the lock workflow.
RULES = {
    'head': {
        'name': 'head',
        'commit': '45872b49ce95',
        'lock_workflow': False,
        'finalize_accepts': ['READY', 'GRADING_FAILED'],
        'add_annotation_requires': ['READY'],
        'reconcile_lock_state': False,
        'individual_upload': True,
    },
    '8f16b75': {
        'name': '8f16b75',
        'commit': '8f16b7566ad8',
        'lock_workflow': True,
        'finalize_accepts': ['LOCKED', 'GRADING_FAILED'],
        'add_annotation_requires': ['LOCKED', 'READY'],
        'reconcile_lock_state': True,
        'individual_upload': False,
    },
}

# One round trip: the columns HEAD added to exams_copy tell the versions apart.
DETECT_SQL = """
SELECT to_regclass('exams_copy') IS NOT NULL AS has_copy,
       to_regclass('grading_copylock') IS NOT NULL AS has_copylock,
       to_regclass('core_auditlog') IS NOT NULL AS has_auditlog,
       EXISTS (SELECT 1 FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'exams_copy'
                  AND column_name = 'subject_variant') AS has_subject_variant,
       to_regclass('grading_score') IS NOT NULL AS has_score
"""


def rules_from_probe(probe):
    """Pick the version's rules from DETECT_SQL's row (a dict)."""
    if not probe['has_copy'] or not probe['has_copylock'] or not probe['has_auditlog']:
        raise KorrigoError("this database does not hold Korrigo's schema (exams_copy, grading_copylock or "
                           "core_auditlog is missing): check login_db")
    if probe['has_subject_variant'] or probe['has_score']:
        return copy.deepcopy(RULES['head'])
    return copy.deepcopy(RULES['8f16b75'])


def detect_version(cursor):
    cursor.execute(DETECT_SQL)
    row = cursor.fetchone()
    if not isinstance(row, dict):
        row = dict(zip([d[0] for d in cursor.description], row))
    return rules_from_probe(row)
