# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is wrong with a copy, decided once: the one home of the stuck-import and failed-finalization rules.

korrigo_facts (every copy), copy_import (the copies it repairs) and copy_dossier (one copy) all use these CTEs, so
a copy is "stuck" or "repairable" by the same rule wherever it is looked at. Each CTE takes the parameter
``%(only_copy_ids)s``: NULL for every copy, or an array of copy ids (then only their rows are read, by index).

* Stuck import: a STAGING copy whose booklets hold no page image (none, or empty ``pages_images``), that arrived
  (IMPORT event, or HEAD individual upload's ``exams_exampdf.uploaded_at``) more than ``%(stuck_after)s`` minutes
  ago or at an unknown time. A STAGING copy with pages awaits validation: not stuck.
* Failed finalization: a GRADING_FAILED copy, or a GRADING_IN_PROGRESS one whose last event is older than
  ``%(stale_after)s`` minutes (its worker died). Its cause is decided from the database; whether the page images its
  finalize will flatten exist and open is judged on disk (``pages_verdict``), and both decide ``is_repairable``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.korrigo.ops.plugins.module_utils.creation import (
    CREATION_PATH_SQL, IMPORT_TIME_SQL, creation_path_sql, upload_time_sql,
)

ONLY_COPIES = "(%(only_copy_ids)s::uuid[] IS NULL OR c.id = ANY(%(only_copy_ids)s::uuid[]))"

# Page images of copy ``c`` in the order Korrigo's PDFFlattener takes them (booklets by start_page).
PAGES_IMAGES_SQL = """(SELECT coalesce(jsonb_agg(p.image ORDER BY b.start_page, p.n), '[]')
              FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id
             CROSS JOIN LATERAL jsonb_array_elements_text(CASE jsonb_typeof(b.pages_images)
                                                           WHEN 'array' THEN b.pages_images ELSE '[]' END)
                        WITH ORDINALITY AS p(image, n)
             WHERE cb.copy_id = c.id)"""

# Page images of booklet ``b`` (Korrigo's pages_images is a JSON list; anything else holds none).
BOOKLET_PAGES_SQL = "CASE jsonb_typeof(b.pages_images) WHEN 'array' THEN jsonb_array_length(b.pages_images) ELSE 0 END"

PAGES_COUNT_SQL = """(SELECT coalesce(sum(""" + BOOKLET_PAGES_SQL + """), 0)
              FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id
             WHERE cb.copy_id = c.id)"""


def finalize_failed_sql(alias):
    """SQL: FINALIZE event ``alias`` recorded a failure (finalize's except branch writes metadata.success=false;
    any other FINALIZE records a success). NULL when the event has no success key: coalesce for a boolean."""
    return "%s.metadata -> 'success' = 'false'::jsonb" % alias


OUT_OF_BOUNDS_SQL = """(a.x < 0 OR a.y < 0 OR a.w < 0 OR a.h < 0 OR a.x + a.w > 1 OR a.y + a.h > 1
                    OR 'NaN'::float8 IN (a.x, a.y, a.w, a.h))"""

# staging counts the pages of every STAGING copy; only those without any (a few) have their arrival time and
# creation path read. "Has an IMPORT event" is the IMPORT event's time not being NULL: that time is read anyway,
# and a second look at the events can become a scan of every IMPORT event.
_STUCK_IMPORTS_CTES = """staging AS (
    SELECT c.id AS copy_id, c.anonymous_id, c.pdf_source, c.exam_id, c.status, c.validated_at, k.booklets, k.pages
      FROM exams_copy c
     CROSS JOIN LATERAL (
           SELECT count(*) AS booklets,
                  coalesce(sum(@BOOKLET_PAGES@), 0) AS pages
             FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id
            WHERE cb.copy_id = c.id) k
     WHERE c.status = 'STAGING' AND @ONLY_COPIES@
), unpaged AS MATERIALIZED (
    SELECT c.copy_id, c.anonymous_id, c.pdf_source, c.exam_id, c.booklets, c.pages,
           coalesce(c.import_at, c.upload_at) AS imported_at,
           @CREATION_PATH_OF_IMPORT_AT@ AS creation_path
      FROM (SELECT c.*, @IMPORT_TIME@ AS import_at, @UPLOAD_TIME@ AS upload_at
              FROM (SELECT s.copy_id AS id, s.* FROM staging s WHERE s.pages = 0) c) c
), stuck AS (
    SELECT s.copy_id, s.anonymous_id, s.pdf_source, s.exam_id, s.imported_at, s.creation_path, s.booklets, s.pages,
           extract(epoch FROM now() - s.imported_at)::float8 AS age_seconds,
           s.imported_at IS NULL AS age_unknown
      FROM unpaged s
     WHERE s.imported_at IS NULL OR s.imported_at < now() - make_interval(mins => %(stuck_after)s)
)"""

_FINALIZATIONS_CTES = """failing AS (
    SELECT c.id AS copy_id, c.anonymous_id, c.status, c.grading_retries, c.grading_error_message,
           c.pdf_source, @CREATION_PATH@ AS creation_path,
           @PAGES_IMAGES@ AS pages_images,
           f.failure_events, f.success_events, f.last_failure_at, f.max_failures_same_actor,
           (SELECT max(e."timestamp") FROM grading_gradingevent e WHERE e.copy_id = c.id) AS last_activity_at,
           (SELECT count(*) FROM grading_annotation a
             WHERE a.copy_id = c.id AND @OUT_OF_BOUNDS@) AS out_of_bounds_annotations
      FROM exams_copy c
      LEFT JOIN LATERAL (
           SELECT count(*) FILTER (WHERE @E_FAILED@) AS failure_events,
                  count(*) FILTER (WHERE NOT coalesce(@E_FAILED@, false)) AS success_events,
                  max(e."timestamp") FILTER (WHERE @E_FAILED@) AS last_failure_at,
                  (SELECT coalesce(max(n), 0) FROM (
                       SELECT count(*) AS n FROM grading_gradingevent x
                        WHERE x.copy_id = c.id AND x.action = 'FINALIZE'
                          AND @X_FAILED@ GROUP BY x.actor_id) per_actor)
                      AS max_failures_same_actor
             FROM grading_gradingevent e
            WHERE e.copy_id = c.id AND e.action = 'FINALIZE') f ON true
     WHERE c.status IN ('GRADING_FAILED', 'GRADING_IN_PROGRESS') AND @ONLY_COPIES@
), decided AS (
    SELECT x.*,
           x.status = 'GRADING_IN_PROGRESS'
               AND (x.last_activity_at IS NULL
                    OR x.last_activity_at < now() - make_interval(mins => %(stale_after)s)) AS stale,
           CASE WHEN x.status = 'GRADING_IN_PROGRESS'
                     AND (x.last_activity_at IS NULL
                          OR x.last_activity_at < now() - make_interval(mins => %(stale_after)s)) THEN 'worker_died'
                WHEN x.status = 'GRADING_IN_PROGRESS' THEN 'in_progress'
                WHEN x.out_of_bounds_annotations > 0 THEN 'out_of_bounds_annotations'
                WHEN jsonb_array_length(x.pages_images) = 0
                     OR x.grading_error_message LIKE 'No pages found%%' THEN 'no_pages'
                WHEN x.max_failures_same_actor >= 2 THEN 'repeated_failures_same_actor'
                WHEN x.grading_error_message ILIKE '%%timeout%%' THEN 'timeout'
                ELSE 'unknown' END AS cause
      FROM failing x
)"""


def _fill(template, rules=None):
    text = (template.replace('@CREATION_PATH@', CREATION_PATH_SQL).replace('@PAGES_IMAGES@', PAGES_IMAGES_SQL)
            .replace('@PAGES_COUNT@', PAGES_COUNT_SQL).replace('@BOOKLET_PAGES@', BOOKLET_PAGES_SQL)
            .replace('@OUT_OF_BOUNDS@', OUT_OF_BOUNDS_SQL)
            .replace('@ONLY_COPIES@', ONLY_COPIES).replace('@E_FAILED@', finalize_failed_sql('e'))
            .replace('@X_FAILED@', finalize_failed_sql('x')))
    if '@UPLOAD_TIME@' in text:
        # The IMPORT event's time is read anyway (arrival): "has an IMPORT event" is that it is not NULL, rather
        # than a second look at the events (which the planner may turn into a scan of every IMPORT event).
        text = (text.replace('@IMPORT_TIME@', IMPORT_TIME_SQL).replace('@UPLOAD_TIME@', upload_time_sql(rules or {}))
                .replace('@CREATION_PATH_OF_IMPORT_AT@', creation_path_sql('c.import_at IS NOT NULL')))
    return text


def stuck_imports_ctes(rules):
    """CTEs ``staging`` (every STAGING copy) and ``stuck`` (the stuck imports) for the version ``rules``."""
    return _fill(_STUCK_IMPORTS_CTES, rules)


def finalizations_ctes():
    """CTEs ``failing`` and ``decided`` (each failing copy with its ``cause`` and ``pages_images``)."""
    return _fill(_FINALIZATIONS_CTES)


# Worst first: a page outside the media root, a page that does not open, a page gone from disk.
PAGE_PROBLEMS = (
    ('refused', ('refused',)),
    ('unreadable_pages', ('corrupted', 'empty', 'too_large', 'timeout', 'encrypted', 'too_many_pages')),
    ('missing_pages', ('missing',)),
)


def pages_verdict(pages_images, checked):
    """The verdict on a copy's page images from pdf_check's (kind=image) results for them, in order:
    (``ok`` | ``no_pages`` | ``missing_pages`` | ``unreadable_pages`` | ``refused``, the images that are not ok)."""
    if not pages_images:
        return 'no_pages', []
    problems = [dict(path=c.get('path'), verdict=c['verdict'], detail=c.get('detail') or '')
                for c in checked if c['verdict'] != 'ok']
    for verdict, kinds in PAGE_PROBLEMS:
        if any(p['verdict'] in kinds for p in problems):
            return verdict, problems
    return 'ok', problems


def is_repairable(cause, page_verdict):
    """A failing copy the finalization remediation re-finalizes: its pages are all there and open, and no finalize
    may still be running on it."""
    return page_verdict == 'ok' and cause != 'in_progress'


def failing_copies_sql():
    """Every failing copy (or those of ``%(only_copy_ids)s``) with its cause and the page images its finalize
    flattens: the work list of the finalization remediation, uncapped (``%(stale_after)s``)."""
    return ("WITH " + finalizations_ctes() + """
SELECT d.copy_id::text AS copy_id, d.anonymous_id, d.status, d.cause, d.pages_images, d.grading_error_message,
       d.grading_retries, d.creation_path, d.out_of_bounds_annotations
  FROM decided d ORDER BY d.anonymous_id""")


def repair_decision(copies, checked):
    """What the finalization remediation does with each failing copy (``copies``: rows of failing_copies_sql;
    ``checked``: {page image path: its pdf_check kind=image result}), by pages_verdict and is_repairable.

    A repairable copy gets its out-of-bounds annotations brought back inside the page, is made finalizable again
    when its worker died, and is re-finalized; the others need a human (bad page images, finalize still running).
    """
    decided = []
    for copy in copies:
        images = copy.get('pages_images') or []
        verdict, problems = pages_verdict(images, [checked[path] for path in images])
        decided.append(dict(copy, pages_verdict=verdict, pages_problems=problems))
    fixable = [c for c in decided if is_repairable(c.get('cause'), c['pages_verdict'])]
    return {
        'out_of_bounds_copy_ids': [c['copy_id'] for c in fixable if c.get('cause') == 'out_of_bounds_annotations'],
        'worker_died_copy_ids': [c['copy_id'] for c in fixable if c.get('cause') == 'worker_died'],
        'refinalize_copy_ids': [c['copy_id'] for c in fixable],
        'bad_pages': [c for c in decided if c['pages_verdict'] != 'ok'],
        'still_running': [c for c in decided if c.get('cause') == 'in_progress'],
    }
