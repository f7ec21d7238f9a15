#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: copy_import
short_description: Finish the import of Korrigo copies stuck in STAGING without pages, or flag them for re-upload
version_added: 0.1.0
description:
  - A copy is stuck when it is C(STAGING) and has no booklet, or only booklets whose C(pages_images) is empty
    (a STAGING copy with pages is normal - it waits for validation - and is never touched). That covers the copies
    of C(import_pdf) whose rasterization never finished and HEAD's individual uploads (C(INDIVIDUAL_A4)), whose
    PDF lies under C(exams/individual/) and which nothing in Korrigo ever rasterizes.
  - Each stuck copy's source PDF (C(exams_copy.pdf_source), under the media root) is checked as
    M(korrigo.ops.pdf_check) does, in a time- and memory-limited child process.
  - A copy whose PDF is C(ok) gets exactly what Korrigo's import produces - every page rasterized with PyMuPDF
    at C(Matrix(2.0, 2.0)) into C(copies/pages/<copy id>/pNNN.png), one booklet (C(start_page=1),
    C(end_page=<pages>), C(pages_images)) linked through C(exams_copy_booklets) (an existing empty booklet of the
    copy is filled instead of adding one), and an C(IMPORT) grading event C({filename, pages}) with
    O(remediation_user) as actor - keeping its id, anonymous id and status C(STAGING). One C(core_auditlog) row
    per copy records it.
  - A copy whose PDF is missing, empty, corrupted, encrypted, too large, has too many pages, times out or lies
    outside the media root is never deleted nor changed - it is flagged for re-upload with one C(core_auditlog)
    row (once per verdict) and listed in RV(flagged).
  - No transaction is open while PDFs are checked or rendered. The run holds a session-level advisory lock (on a
    connection of its own, idle between statements, released at the end or when the process dies), so a second
    run returns C(skipped_concurrent_run). It reads the stuck copies in one short read-only transaction, checks
    and renders their PDFs (O(parallel) child processes at a time) into scratch directories under
    C(copies/pages/), then writes in one short transaction - one statement that locks each copy and re-checks it
    is still stuck (C(STAGING) without pages, C(FOR UPDATE)), and the page images moved into place just before
    the commit. A crash at any point leaves each copy as it was or completely imported; at most page files of a
    copy still stuck, overwritten by the next run, or scratch directories of the crashed run, which the next run
    removes.
  - In check mode nothing is rendered nor written, and the same statement is rolled back.
  - O(max_changes) is checked before anything is rendered (against the copies whose PDF is C(ok)) and again by
    the statement (imports plus new flags).
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  stuck:
    description:
      - Select every stuck copy whose IMPORT event (or, for an individual upload, its C(exams_exampdf.uploaded_at))
        is older than O(stuck_after_minutes), or whose age is unknown.
    type: bool
    default: false
  copy_ids:
    description:
      - UUIDs of the copies to repair (with O(stuck), only those of them that are stuck). Unknown ids make the
        module fail without change; listed copies that are not stuck are returned in RV(skipped).
    type: list
    elements: str
    default: []
  stuck_after_minutes:
    description:
      - With O(stuck), ignore copies whose import started less than this many minutes ago (a worker may still be on them).
    type: int
    default: 5
  flag_bad:
    description:
      - Write the audit row that flags a copy whose PDF is not C(ok) for re-upload.
    type: bool
    default: true
  rasterize_timeout:
    description:
      - Seconds allowed to rasterize all the pages of one PDF (its child process is then killed and nothing is written for it).
    type: int
    default: 300
  actions_limit:
    description:
      - Most entries listed in RV(actions); RV(count) and the audit trail always cover every copy.
    type: int
    default: 1000
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.media
  - korrigo.ops.korrigo.pdf_limits
  - korrigo.ops.korrigo.attributes_remediation
attributes:
  check_mode:
    description:
      - Checks every source PDF and runs the same statement in a transaction that is rolled back; renders and writes
        no page image, so a PDF that passes the check but fails to rasterize only shows in a real run.
    support: full
requirements:
  - PyMuPDF (C(pymupdf), or Debian's C(python3-fitz)) for the Python running the module.
  - Write access to the media root (as the user Korrigo's worker writes it).
seealso:
  - module: korrigo.ops.pdf_check
  - module: korrigo.ops.korrigo_facts
'''

EXAMPLES = r'''
- name: Re-rasterize every stuck copy whose PDF is fine, flag the others for re-upload
  korrigo.ops.copy_import:
    database_url: "{{ korrigo_database_url }}"
    media_root: /opt/korrigo/media
    stuck: true
    max_changes: 50

- name: One copy, by id
  korrigo.ops.copy_import:
    login_host: 127.0.0.1
    login_user: korrigo
    login_password: "{{ korrigo_db_password }}"
    compose_project: korrigo
    copy_ids: [0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e]
'''

RETURN = r'''
count:
  description: Copies changed (imported plus newly flagged), or that would be in check mode.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
imported:
  description: Number of copies that got their pages.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: int
actions:
  description: One entry per copy imported or flagged, at most O(actions_limit), ordered by anonymous id.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
  sample:
    - kind: reimport
      copy_id: 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e
      anonymous_id: IMPORT-0B8F3C52
      verdict: ok
      before: {status: STAGING, pages: 0, flagged: null}
      after: {status: STAGING, pages: 3, flagged: null}
    - kind: flag_reupload
      copy_id: 9d1e0c11-2b7a-4c55-8e0e-7c1f4a3b2d10
      anonymous_id: IMPORT-9D1E0C11
      verdict: encrypted
      before: {status: STAGING, pages: 0, flagged: null}
      after: {status: STAGING, pages: 0, flagged: encrypted}
flagged:
  description: Every stuck copy whose PDF is not C(ok), flagged now or before, with its verdict and detail.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
skipped:
  description: Listed copies that are not stuck (their status and page count), left alone.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
verdicts:
  description: PDF verdict per stuck copy considered.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: dict
korrigo_version:
  description: Korrigo version detected from the schema.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: str
stale_scratch_removed:
  description: Scratch directories (C(copies/pages/.korrigo-ops-*)) a crashed run had left, removed by this run.
  returned: success, unless another run held the advisory lock (then only RV(skipped_concurrent_run) and RV(msg))
  type: list
  elements: str
  version_added: 0.4.0
skipped_concurrent_run:
  description: True when another run held this remediation's advisory lock and nothing was done.
  returned: when another run is in progress
  type: bool
msg:
  description: Which run holds the lock.
  returned: when another run is in progress
  type: str
'''

import json
import os
import re
import shutil
import tempfile

from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.copy_rules import PAGES_COUNT_SQL, stuck_imports_ctes
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    close_quietly, connect, korrigo_common_argument_spec, korrigo_guard_argument_spec, psycopg2, read_only_session,
    sql,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import ConcurrentRun, KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    korrigo_media_argument_spec, media_root_from_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.pdf import (
    check_files, limits_from_params, pdf_limits_argument_spec, rasterize_many,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import (
    ADVISORY_NAMESPACE, UNKNOWN_COPIES_CTES, Remediation, audit_cte, check_max_changes, check_positive_max_changes,
    check_statement_guards, grading_event_cte, remediation_result, require_selector, validate_uuids,
)

FLAG_ACTION = 'korrigo_ops.copy_import.flag_reupload'
IMPORT_ACTION = 'korrigo_ops.copy_import.reimport'

# Pages of a copy: the sum of its booklets' pages_images lengths (0 when it has no booklet): copy_rules, one home.
PAGES_EXPR = PAGES_COUNT_SQL

# The stuck-import rule is copy_rules' (staging -> unpaged -> stuck, the same as korrigo_facts and copy_dossier):
# only STAGING copies are read, and only those without pages have their arrival looked up. Listed: the stuck ones,
# or, for explicit copy_ids, every one of them without pages whatever its age; the other copy_ids are skipped.
SELECT_TEMPLATE = """
WITH {unknown}, {stuck_ctes},
listed AS (
    SELECT u.copy_id, u.anonymous_id, u.pdf_source, u.imported_at,
           (SELECT e.metadata ->> 'filename' FROM grading_gradingevent e
             WHERE e.copy_id = u.copy_id AND e.action = 'IMPORT' ORDER BY e."timestamp" LIMIT 1) AS filename
      FROM unpaged u
     WHERE cardinality(%(copy_ids)s::uuid[]) > 0 OR u.copy_id IN (SELECT s.copy_id FROM stuck s)
)
SELECT (SELECT count(*) FROM unknown) AS unknown_n,
       (SELECT coalesce(jsonb_agg(copy_id ORDER BY copy_id), '[]') FROM unknown) AS unknown_ids,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', l.copy_id, 'anonymous_id', l.anonymous_id,
                                                     'pdf_source', l.pdf_source, 'filename', l.filename,
                                                     'imported_at', l.imported_at)
                                  ORDER BY l.anonymous_id), '[]') FROM listed l) AS candidates,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', c.id, 'anonymous_id', c.anonymous_id,
                                                     'status', c.status, 'pages', {pages},
                                                     'reason', CASE WHEN c.status <> 'STAGING' THEN 'not STAGING'
                                                                    ELSE 'has pages (awaiting validation)' END)
                                  ORDER BY c.anonymous_id), '[]')
          FROM exams_copy c WHERE c.id = ANY(%(copy_ids)s::uuid[])
                              AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.copy_id = c.id)) AS skipped
"""

# One statement: re-checks that each copy is still stuck (locking it), counts the changes against max_changes,
# fills or creates the booklet, links it, writes the IMPORT events and the audit rows (imports and flags).
APPLY_TEMPLATE = """
WITH items AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb)
        AS x(copy_id uuid, verdict text, detail text, pages integer, pages_images jsonb, filename text,
             pdf_source text)
), target AS MATERIALIZED (
    SELECT i.*, c.anonymous_id, c.exam_id,
           (SELECT b.id FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id
             WHERE cb.copy_id = c.id ORDER BY b.id LIMIT 1) AS empty_booklet_id,
           (SELECT a.metadata ->> 'verdict' FROM core_auditlog a
             WHERE a.action = %(flag_action)s AND a.resource_type = 'Copy' AND a.resource_id = c.id::text
             ORDER BY a.id DESC LIMIT 1) AS flagged_before
      FROM items i JOIN exams_copy c ON c.id = i.copy_id
     WHERE c.status = 'STAGING' AND {pages} = 0
     ORDER BY c.id
       FOR UPDATE OF c
), planned AS MATERIALIZED (
    SELECT t.*, CASE WHEN t.verdict = 'ok' THEN 'reimport' ELSE 'flag_reupload' END AS kind
      FROM target t
     WHERE t.verdict = 'ok'
        OR (%(flag_bad)s AND t.flagged_before IS DISTINCT FROM t.verdict)
), guard AS (
    SELECT (SELECT count(*) FROM planned) AS n
), imports AS MATERIALIZED (
    SELECT p.*, gen_random_uuid() AS new_booklet_id,
           jsonb_build_object('filename', p.filename, 'pages', p.pages) AS event_metadata,
           jsonb_build_object('remediation', 'korrigo.ops.copy_import', 'pdf_source', p.pdf_source,
                              'pages', p.pages, 'booklet', CASE WHEN p.empty_booklet_id IS NULL THEN 'created'
                                                                ELSE 'filled' END) AS audit_metadata
      FROM planned p, guard g
     WHERE p.kind = 'reimport' AND g.n <= %(max_changes)s
), flags AS MATERIALIZED (
    SELECT p.*,
           jsonb_build_object('remediation', 'korrigo.ops.copy_import', 'verdict', p.verdict, 'detail', p.detail,
                              'pdf_source', p.pdf_source, 'needs', 're-upload of the PDF') AS audit_metadata
      FROM planned p, guard g
     WHERE p.kind = 'flag_reupload' AND g.n <= %(max_changes)s
), filled AS (
    UPDATE exams_booklet b SET start_page = 1, end_page = i.pages, pages_images = i.pages_images
      FROM imports i WHERE b.id = i.empty_booklet_id
    RETURNING b.id
), created AS (
    INSERT INTO exams_booklet (id, start_page, end_page, header_image, student_name_guess, exam_id, pages_images)
    SELECT i.new_booklet_id, 1, i.pages, NULL, NULL, i.exam_id, i.pages_images
      FROM imports i WHERE i.empty_booklet_id IS NULL
    RETURNING id
), linked AS (
    INSERT INTO exams_copy_booklets (copy_id, booklet_id)
    SELECT i.copy_id, i.new_booklet_id FROM imports i
     WHERE i.empty_booklet_id IS NULL AND EXISTS (SELECT 1 FROM created cr WHERE cr.id = i.new_booklet_id)
    RETURNING id
), {events}, {audit_imports}, {audit_flags}, done AS (
    SELECT copy_id, anonymous_id, verdict, kind, pages, flagged_before FROM imports
    UNION ALL SELECT copy_id, anonymous_id, verdict, kind, pages, flagged_before FROM flags
)
SELECT g.n AS selected,
       (SELECT count(*) FROM imports) AS imported,
       (SELECT count(*) FROM flags) AS flagged_now,
       (SELECT coalesce(jsonb_agg(copy_id::text ORDER BY copy_id), '[]') FROM imports) AS imported_ids,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('copy_id', t.copy_id, 'anonymous_id', t.anonymous_id,
                                                     'verdict', t.verdict, 'detail', t.detail,
                                                     'pdf_source', t.pdf_source,
                                                     'flagged_before', t.flagged_before)
                                  ORDER BY t.anonymous_id), '[]')
          FROM target t WHERE t.verdict <> 'ok') AS bad,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'kind', d.kind, 'copy_id', d.copy_id, 'anonymous_id', d.anonymous_id, 'verdict', d.verdict,
            'before', jsonb_build_object('status', 'STAGING', 'pages', 0, 'flagged', d.flagged_before),
            'after', jsonb_build_object('status', 'STAGING',
                                        'pages', CASE WHEN d.kind = 'reimport' THEN d.pages ELSE 0 END,
                                        'flagged', CASE WHEN d.kind = 'reimport' THEN d.flagged_before
                                                        ELSE d.verdict END))
            ORDER BY d.anonymous_id), '[]')
          FROM (SELECT * FROM done ORDER BY anonymous_id LIMIT %(actions_limit)s) d) AS actions,
       (SELECT count(*) FROM events) AS events_written,
       (SELECT count(*) FROM audit_imports) + (SELECT count(*) FROM audit_flags) AS audit_rows
  FROM guard g
"""


def select_statement(rules):
    """The stuck copies by copy_rules' rule; an individual upload's age is its exams_exampdf upload time."""
    return sql.SQL(SELECT_TEMPLATE).format(unknown=sql.SQL(UNKNOWN_COPIES_CTES), pages=sql.SQL(PAGES_EXPR),
                                           stuck_ctes=sql.SQL(stuck_imports_ctes(rules)))


def apply_statement():
    return sql.SQL(APPLY_TEMPLATE).format(
        pages=sql.SQL(PAGES_EXPR),
        events=grading_event_cte('events', 'imports', 'event_action'),
        audit_imports=audit_cte('audit_imports', 'imports', 'import_action'),
        audit_flags=audit_cte('audit_flags', 'flags', 'flag_action'),
    )


def validate(params):
    copy_ids = validate_uuids(params['copy_ids'])
    require_selector({'stuck': params['stuck'], 'copy_ids': copy_ids},
                     'set stuck=true to repair every stuck import, or list copy_ids')
    check_positive_max_changes(params['max_changes'])
    if params['stuck_after_minutes'] < 0:
        raise KorrigoError("stuck_after_minutes must not be negative")
    if params['rasterize_timeout'] < 1:
        raise KorrigoError("rasterize_timeout must be at least 1")
    return copy_ids


def page_paths(copy_id, pages):
    return ['copies/pages/%s/p%03d.png' % (copy_id, k) for k in range(pages)]


SCRATCH_PREFIX = '.korrigo-ops-'
APPLICATION_NAME = 'korrigo.ops:copy_import'
# The run's session-level lock: its own key, since the write transaction takes the remediation's xact-level one.
RUN_LOCK_KEY = 'copy_import.run'


@contextmanager
def run_lock(params):
    """Hold copy_import's run lock (session level, on a connection of its own, autocommit: idle, never idle in
    transaction) for the whole run; ConcurrentRun when another run holds it. Released at the end; PostgreSQL
    releases it when the process dies."""
    conn = connect(params, APPLICATION_NAME)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (ADVISORY_NAMESPACE, RUN_LOCK_KEY))
            locked = cursor.fetchone()[0]
    except psycopg2.Error as err:
        close_quietly(conn)
        raise KorrigoError("taking copy_import's run lock failed, nothing was changed: %s" % str(err).strip())
    if not locked:
        close_quietly(conn)
        raise ConcurrentRun("another run of copy_import holds its advisory lock")
    try:
        yield conn
    finally:
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", (ADVISORY_NAMESPACE, RUN_LOCK_KEY))
        except psycopg2.Error:
            pass  # the lock goes with the session
        close_quietly(conn)


class PageFiles(object):
    """Scratch directories of rendered pages under copies/pages/, moved into place or removed."""

    def __init__(self, root):
        self.root = root
        self.pages_dir = os.path.join(root, 'copies', 'pages')
        self.scratch = {}

    def stale(self):
        """Scratch directories a crashed run left (only while holding the run lock: no other run is rendering)."""
        if not os.path.isdir(self.pages_dir):
            return []
        return sorted(name for name in os.listdir(self.pages_dir)
                      if name.startswith(SCRATCH_PREFIX) and os.path.isdir(os.path.join(self.pages_dir, name)))

    def remove_stale(self):
        names = self.stale()
        for name in names:
            shutil.rmtree(os.path.join(self.pages_dir, name), ignore_errors=True)
        return ['copies/pages/%s' % name for name in names]

    def scratch_dir(self, copy_id):
        if not os.path.isdir(self.pages_dir):
            os.makedirs(self.pages_dir)
        scratch = tempfile.mkdtemp(prefix='%s%s-' % (SCRATCH_PREFIX, copy_id), dir=self.pages_dir)
        self.scratch[copy_id] = scratch
        return scratch

    def install(self, copy_ids):
        """Move the rendered pages of ``copy_ids`` to copies/pages/<copy id>/ (what Korrigo's import writes)."""
        for copy_id in copy_ids:
            scratch = self.scratch.pop(copy_id)
            final = os.path.join(self.pages_dir, copy_id)
            if not os.path.isdir(final):
                os.makedirs(final)
            for name in sorted(os.listdir(scratch)):
                os.replace(os.path.join(scratch, name), os.path.join(final, name))
            os.rmdir(scratch)

    def discard(self):
        for scratch in self.scratch.values():
            shutil.rmtree(scratch, ignore_errors=True)
        self.scratch = {}


def check_candidates(candidates, root, limits, parallel):
    """The PDF verdict of each candidate (pdf_check's), side by side; no page is rendered."""
    items, paths = [], []
    for cand in candidates:
        items.append({'copy_id': cand['copy_id'], 'anonymous_id': cand['anonymous_id'],
                      'pdf_source': cand['pdf_source'],
                      'filename': cand['filename'] or os.path.basename(cand['pdf_source'] or '') or None})
        if cand['pdf_source']:
            paths.append(cand['pdf_source'])
    checked = iter(check_files(root, paths, limits, parallel=parallel, batched=True))
    for item in items:
        if not item['pdf_source']:
            result = {'verdict': 'missing', 'detail': 'the copy has no pdf_source', 'pages': None}
        else:
            result = next(checked)
        item.update(verdict=result['verdict'], detail=result.get('detail') or '', pages=result.get('pages') or 0,
                    realpath=result.get('realpath'))
    return items


DISK_FULL = re.compile(r'No space left on device|ENOSPC|Errno 28|Disk quota exceeded|EDQUOT', re.IGNORECASE)


def render(items, pages, limits, parallel):
    """Rasterize the PDF of every ``ok`` item into its scratch directory, side by side; an item whose rendering
    fails gets that verdict instead."""
    todo = [item for item in items if item['verdict'] == 'ok']
    jobs = [(item['realpath'], pages.scratch_dir(item['copy_id']), item['copy_id']) for item in todo]
    for item, rendered in zip(todo, rasterize_many(jobs, limits, parallel=parallel)):
        detail = rendered.get('detail') or ''
        if rendered['verdict'] != 'ok' and DISK_FULL.search(detail):
            # The PDF is fine: the media filesystem is not. Flagging the copy for re-upload would be wrong.
            raise KorrigoError("the media filesystem under %s is full while writing the page images of copy %s (%s): "
                               "nothing was changed (no booklet, no page file kept); free space and run again"
                               % (pages.root, item['copy_id'], detail))
        if rendered['verdict'] != 'ok':
            item.update(verdict=rendered['verdict'], detail='rasterization: %s' % detail)
        elif rendered['pages_images'] != page_paths(item['copy_id'], rendered['pages']):
            raise KorrigoError("rasterization of %s produced unexpected files" % item['copy_id'])
        else:
            item['pages'] = rendered['pages']


def select_stuck(params, copy_ids):
    """The stuck copies (and the selector's unknown or not-stuck ones), in one short read-only transaction."""
    with read_only_session(params, APPLICATION_NAME, 'reading the stuck copies failed',
                           tables=('exams_copy', 'exams_booklet', 'exams_copy_booklets')) as (cursor, rules):
        cursor.execute(select_statement(rules), {
            'copy_ids': copy_ids, 'only_copy_ids': copy_ids or None, 'stuck_after': params['stuck_after_minutes'],
        })
        return cursor.fetchone()


def repair(module):
    params = module.params
    copy_ids = validate(params)
    check_limits = limits_from_params(params)
    limits = {'check': check_limits, 'rasterize': dict(check_limits, timeout=params['rasterize_timeout'])}
    root = media_root_from_params(params)
    pages = PageFiles(root)
    with run_lock(params):
        found = select_stuck(params, copy_ids)
        if found['unknown_n']:
            check_statement_guards({'unknown_n': found['unknown_n'], 'unknown_ids': found['unknown_ids'],
                                    'selected': 0}, params['max_changes'])
        items = check_candidates(found['candidates'], root, limits['check'], params['parallel'])
        # Refused before anything is rendered: each copy whose PDF is ok would be imported.
        check_max_changes(sum(1 for item in items if item['verdict'] == 'ok'), params['max_changes'])
        removed = [] if module.check_mode else pages.remove_stale()
        try:
            if not module.check_mode:
                render(items, pages, limits['rasterize'], params['parallel'])
            for item in items:
                item['pages_images'] = page_paths(item['copy_id'], item['pages']) if item['verdict'] == 'ok' else []
            with Remediation(params, 'copy_import', module.check_mode,
                             tables=('exams_copy', 'exams_booklet', 'exams_copy_booklets')) as rem:
                row = rem.fetchone(apply_statement(), rem.trail_params(
                    items=json.dumps([dict((k, v) for k, v in item.items() if k not in ('anonymous_id', 'realpath'))
                                      for item in items]),
                    flag_bad=params['flag_bad'], max_changes=params['max_changes'],
                    actions_limit=params['actions_limit'], flag_action=FLAG_ACTION, import_action=IMPORT_ACTION,
                    event_action='IMPORT'))
                check_statement_guards(row, params['max_changes'])
                if not module.check_mode:
                    pages.install(row['imported_ids'])
                version = rem.rules['name']
        finally:
            pages.discard()

    return remediation_result(
        module, row['imported'] + row['flagged_now'], row['actions'], version, 'copies', 'copy_id',
        imported=row['imported'], flagged_now=row['flagged_now'], flagged=row['bad'], skipped=found['skipped'],
        verdicts=[dict((k, item[k]) for k in ('copy_id', 'anonymous_id', 'pdf_source', 'verdict', 'detail', 'pages'))
                  for item in items],
        events_written=row['events_written'], audit_rows=row['audit_rows'], media_root=root,
        stale_scratch_removed=removed)


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(korrigo_media_argument_spec())
    argument_spec.update(pdf_limits_argument_spec())
    argument_spec.update(
        stuck=dict(type='bool', default=False),
        copy_ids=dict(type='list', elements='str', default=[]),
        stuck_after_minutes=dict(type='int', default=5),
        flag_bad=dict(type='bool', default=True),
        rasterize_timeout=dict(type='int', default=300),
        actions_limit=dict(type='int', default=1000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: repair(module))


if __name__ == '__main__':
    main()
