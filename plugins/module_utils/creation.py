# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a Korrigo copy came into being, and what that path leaves behind: the one home of these rules.

Korrigo creates copies four ways (shared/korrigo-schema.md, "How copies come into being"):

* ``import`` - ``GradingService.import_pdf``: STAGING, ``pdf_source`` under ``copies/source/``, one booklet
  ``copies/pages/<id>/pNNN.png``, an ``IMPORT`` event;
* ``batch`` - the exam upload split by ``PDFSplitter`` (the default mode): one booklet each, empty ``pdf_source``,
  no event; READY with ``validated_at`` on HEAD (auto-validation), STAGING on 8f16b75 (a person validates:
  ``VALIDATE`` event);
* ``individual`` - ``upload-individual-pdfs`` (HEAD): an ``exams_exampdf`` row, a STAGING copy whose
  ``pdf_source`` is under ``exams/individual/``, no booklet, no event;
* ``merge`` - ``merge-booklets``: READY with no ``validated_at``, empty ``pdf_source``, no event.

The database keeps no column saying which, so the path is read from what each leaves behind, in this order:
an ``IMPORT`` event or a ``copies/source/`` PDF is an import; an ``exams/individual/`` PDF an individual upload;
a copy past STAGING that nobody validated (validate_copy always sets ``validated_at``) a merge; anything else
a batch copy.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CREATION_PATHS = ('batch', 'individual', 'import', 'merge')

IMPORT_PREFIX = 'copies/source/'
INDIVIDUAL_PREFIX = 'exams/individual/'

# SQL over an exams_copy row aliased ``c``; constant text, no input in it. ``has_import`` is how the statement knows
# whether the copy has an IMPORT event (a statement that already counted events per copy passes its count).
IMPORT_EXISTS_SQL = "EXISTS (SELECT 1 FROM grading_gradingevent ie WHERE ie.copy_id = c.id AND ie.action = 'IMPORT')"


def creation_path_sql(has_import=IMPORT_EXISTS_SQL):
    """The creation-path rule as an SQL CASE over ``c``."""
    return """(CASE
    WHEN c.pdf_source LIKE 'copies/source/%%'
         OR """ + has_import + """
        THEN 'import'
    WHEN c.pdf_source LIKE 'exams/individual/%%' THEN 'individual'
    WHEN c.status <> 'STAGING' AND c.validated_at IS NULL THEN 'merge'
    ELSE 'batch' END)"""


CREATION_PATH_SQL = creation_path_sql()


# When a copy was uploaded or imported: its IMPORT event, else (HEAD's individual upload) its exams_exampdf row,
# which has no key to the copy but the same file (pdf_file = pdf_source) in the same exam. NULL for batch copies.
IMPORT_TIME_SQL = """(SELECT min(e."timestamp") FROM grading_gradingevent e
                      WHERE e.copy_id = c.id AND e.action = 'IMPORT')"""
# Only an individual upload's PDF (under exams/individual/) has such a row: other copies skip the lookup (no index
# on pdf_file; at a district's thousands of STAGING copies, one scan of the exam's uploads each).
UPLOAD_TIME_SQL = """(SELECT min(p.uploaded_at) FROM exams_exampdf p
                      WHERE c.pdf_source LIKE 'exams/individual/%%'
                        AND p.exam_id = c.exam_id AND p.pdf_file = c.pdf_source)"""


def upload_time_sql(rules):
    """SQL for when copy ``c`` was uploaded individually: HEAD only (8f16b75 has no individual upload)."""
    return UPLOAD_TIME_SQL if rules.get('individual_upload') else 'NULL::timestamptz'


# Which events each path must have, per Korrigo version: (path, version) -> set of rules that apply.
#   import:   IMPORT always; VALIDATE once past STAGING (a person validated it).
#   batch:    VALIDATE past STAGING on 8f16b75 only (HEAD auto-validates without an event).
#   individual: VALIDATE past STAGING (validate_copy is the only way out of STAGING).
#   merge:    nothing (created READY, no event).
_EXPECTED = {
    'import': ('IMPORT', 'VALIDATE'),
    'batch': ('VALIDATE',),
    'individual': ('VALIDATE',),
    'merge': (),
}


def expects_import(path):
    """True when a copy created by ``path`` must have an IMPORT event."""
    return 'IMPORT' in _EXPECTED[path]


def expects_validate(path, version):
    """True when a copy of ``path`` past STAGING must have a VALIDATE event on ``version`` (head or 8f16b75)."""
    if path == 'batch':
        return version == '8f16b75'
    return 'VALIDATE' in _EXPECTED[path]


def expectation_params(version):
    """SQL parameters naming, per path, whether IMPORT / VALIDATE are expected on ``version``."""
    return {
        'import_expected_paths': [p for p in CREATION_PATHS if expects_import(p)],
        'validate_expected_paths': [p for p in CREATION_PATHS if expects_validate(p, version)],
    }


def creation_path_of(pdf_source, has_import_event, status, validated_at):
    """The same rule as CREATION_PATH_SQL, in Python (reports, dossiers, tests)."""
    source = pdf_source or ''
    if source.startswith(IMPORT_PREFIX) or has_import_event:
        return 'import'
    if source.startswith(INDIVIDUAL_PREFIX):
        return 'individual'
    if status != 'STAGING' and validated_at is None:
        return 'merge'
    return 'batch'


# Why an event is expected, per (event, path): the text a gap report shows as the rule the copy broke.
_RULES = {
    ('IMPORT', 'import'): 'import_pdf copies have an IMPORT event',
    ('VALIDATE', 'import'): 'import_pdf copies past STAGING were validated by a person (VALIDATE)',
    ('VALIDATE', 'batch'): '8f16b75 batch copies past STAGING were validated by a person (VALIDATE)',
    ('VALIDATE', 'individual'): 'individual uploads leave STAGING only through validate_copy (VALIDATE)',
}


def expectation_rule(event, path, version):
    """The rule that makes ``event`` (IMPORT or VALIDATE past STAGING) expected for a copy of ``path`` on
    ``version``, or None when that path never writes it there (no gap possible)."""
    if event == 'IMPORT':
        expected = expects_import(path)
    elif event == 'VALIDATE':
        expected = expects_validate(path, version)
    else:
        raise ValueError("event must be IMPORT or VALIDATE (got %r)" % (event,))
    return _RULES.get((event, path)) if expected else None


def expectation_rules(version):
    """{(event, path): rule} for every event expected on ``version`` (paths that expect nothing are absent)."""
    rules = {}
    for event in ('IMPORT', 'VALIDATE'):
        for path in CREATION_PATHS:
            rule = expectation_rule(event, path, version)
            if rule:
                rules[(event, path)] = rule
    return rules
