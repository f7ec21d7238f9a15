"""Seed scenario ``finalization``: copies whose finalization failed, one group per root cause, plus controls.

Copies come as in a real school: almost all from the exam's batch upload (empty ``pdf_source``, no IMPORT
event, booklet pages ``booklets/<exam>/<booklet>/page_NNN.png``), the ``same_actor`` copy from ``import_pdf``
and the ``merged`` control from a merge (two booklets). Korrigo's finalize flattens the booklets' page images,
so every copy has its page PNGs under MEDIA_ROOT (except the groups whose pages are the problem), two
annotations with CREATE_ANN events, and for failed copies the trail finalize leaves: one FINALIZE event
``{"detail", "retries", "success": false}`` per failed attempt, ``grading_retries`` and ``grading_error_message``.

Groups (returned as ``<group>_copy_ids``):

* ``out_of_bounds``: an annotation box leaves the page (x + w > 1; the second copy also has a NaN height);
* ``missing_pages``: failed on a timeout, and its page images are gone from disk (a re-finalize would build a
  PDF without them: needs a human);
* ``unreadable_pages``: its first page image is not an image any more (MuPDF cannot open it);
* ``same_actor``: the cause is gone but prof.martin failed twice, so a re-finalize as prof.martin hits
  get_or_create's MultipleObjectsReturned (an imported copy: pdf_source and IMPORT present);
* ``worker_died``: stuck in GRADING_IN_PROGRESS for two hours;
* ``unknown``: failed three times with an error nobody recognises (retries exhausted);
* ``bulk`` (only with ``count``): ``count`` more repairable batch copies (GRADING_FAILED once on a timeout, two
  page images each, one tiny PNG written to every path): a large incident (``count=2500``);
* controls: ``graded`` (done), ``failed_once`` (one transient timeout), ``border`` (annotations exactly on
  the page border, valid), ``merged`` (READY, two booklets, never finalized), ``ready_oob`` (READY, not yet
  finalized, one annotation out of bounds: its first finalize would fail).
"""

import json
import os

from korrigo_stack import common
from korrigo_stack.seed import _TEACHER_BY_I, scenario

GROUPS = ("out_of_bounds", "missing_pages", "unreadable_pages", "same_actor", "worker_died", "unknown", "graded",
          "failed_once", "border", "merged", "ready_oob")
ORIGIN = {"same_actor": "import", "merged": "merge"}
OOB_DETAIL = "flatten_copy failed: fitz error: annotation box is outside the page"
ERRORS = {
    "out_of_bounds": OOB_DETAIL,
    "missing_pages": "timeout: flattening exceeded 90.0s",
    "unreadable_pages": "Failed to open file 'booklets/{id}/page_001.png'.",
    "same_actor": "get() returned more than one GradingEvent -- it returned 2!",
    "unknown": "ConnectionResetError: [Errno 104] Connection reset by peer",
    "failed_once": "timeout: flattening exceeded 90.0s",
    "border": OOB_DETAIL,
}
FAILURES = {"out_of_bounds": 1, "missing_pages": 1, "unreadable_pages": 1, "same_actor": 2, "unknown": 3,
            "failed_once": 1, "border": 1}


def write_source_pdf(path, title, pages=2):
    """A real A4 PDF, as a teacher's scan would be once imported."""
    fitz = common.pymupdf()

    os.makedirs(os.path.dirname(path), exist_ok=True)
    doc = fitz.open()
    for number in range(pages):
        page = doc.new_page(width=595, height=842)
        page.insert_text(fitz.Point(72, 72), "%s - page %d" % (title, number + 1), fontsize=14)
        page.insert_text(fitz.Point(72, 120), "Exercice %d : reponse de l'eleve" % (number + 1), fontsize=11)
    doc.save(path)
    doc.close()


def write_tiny_pages(cur, media, copy_ids):
    """The page images of many copies, fast: one small PNG made once, written to every path their booklets name."""
    png = common.page_png("bulk", width=24, height=34)
    cur.execute("SELECT DISTINCT p.path FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id"
                " CROSS JOIN LATERAL jsonb_array_elements_text(b.pages_images) AS p(path)"
                " WHERE cb.copy_id = ANY(%s::uuid[])", (list(copy_ids),))
    made = set()
    for (rel,) in cur.fetchall():
        path = os.path.join(media, rel)
        folder = os.path.dirname(path)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(path, "wb") as out:
            out.write(png)


@scenario("finalization", "failed finalizations, one group per root cause, plus GRADED/failed-once/border controls")
def build_finalization(ctx, count):
    exam = ctx.create_exam(1, name="Bac blanc de SVT (finalization)")
    groups = GROUPS + (("bulk",) if count else ())
    sizes = dict((group, 1) for group in groups)
    sizes["out_of_bounds"] = 2
    sizes["bulk"] = count or 0
    errors = dict(ERRORS, bulk=ERRORS["failed_once"])
    failures_by_group = dict(FAILURES, bulk=1) if count else FAILURES
    history = dict(
        importer_id="%(admin)s", imported_at="now() - interval '3 days' - g.i * interval '7 minutes'",
        validator_id="%(admin)s", validated_at="now() - interval '3 days' + interval '30 minutes'",
        corrector_id=_TEACHER_BY_I, dispatch_run_id="%(dispatch_run)s::uuid",
        assigned_at="now() - interval '3 days' + interval '90 minutes'",
        grader_id="%(martin)s", ann_at="now() - interval '1 day'",
        ann1_delta="5 + g.i", ann2_delta="-1",
    )
    for group in groups:
        ctx.load_ids(group, sizes[group])
        exprs = dict(history, origin="'%s'" % ORIGIN.get(group, "batch"), pages="2")
        if group == "graded":
            exprs.update(status="'GRADED'", graded_at="now() - interval '20 hours'", retries="1", final_pdf="true")
        elif group == "worker_died":
            exprs.update(status="'GRADING_IN_PROGRESS'", retries="1")
        elif group in ("merged", "ready_oob"):
            exprs.update(status="'READY'", retries="0")
        else:
            exprs.update(status="'GRADING_FAILED'", retries=str(failures_by_group[group]),
                         error_message="replace(%(error)s, '{id}', s.copy::text)")
        ctx.plan(group, sizes[group], params={"error": errors.get(group, "")}, **exprs)
    ids = dict((group, ctx.plan_copy_ids(group)) for group in groups)
    counts = ctx.materialize()
    cur = ctx.cur

    # Korrigo's failure trail: one FINALIZE event per failed attempt, by the teacher who clicked.
    for group, failures in failures_by_group.items():
        cur.execute(
            "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
            " SELECT gen_random_uuid(), 'FINALIZE', now() - interval '6 hours' + k * interval '10 minutes',"
            " jsonb_build_object('detail', c.grading_error_message, 'retries', k, 'success', false), %s, c.id"
            " FROM exams_copy c, generate_series(1, %s) AS k WHERE c.id = ANY(%s::uuid[])",
            (ctx.users["prof.martin"], failures, ids[group]))
    # The dead worker's copy: last activity two hours ago (its annotations).
    cur.execute("UPDATE grading_gradingevent SET \"timestamp\" = now() - interval '2 hours'"
                " WHERE copy_id = ANY(%s::uuid[])", (ids["worker_died"],))
    # Boxes leaving the page; the border control sits exactly on it.
    cur.execute("UPDATE grading_annotation SET x = 0.85, w = 0.3 WHERE copy_id = ANY(%s::uuid[]) AND page_index = 0",
                (ids["out_of_bounds"] + ids["ready_oob"],))
    cur.execute("UPDATE grading_annotation SET h = 'NaN' WHERE copy_id = %s AND page_index = 1",
                (ids["out_of_bounds"][1],))
    cur.execute("UPDATE grading_annotation SET x = 0.75, w = 0.25, y = CASE page_index WHEN 0 THEN 0 ELSE 0.5 END,"
                " h = 0.5 WHERE copy_id = ANY(%s::uuid[])", (ids["border"],))

    media = common.media_root()
    for group in GROUPS:
        for copy_id in ids[group]:
            source = os.path.join(media, "copies", "source", "copy_%s.pdf" % copy_id)
            if ORIGIN.get(group) == "import":
                write_source_pdf(source, "Copie %s (%s)" % (copy_id[:8], group))
            if group == "graded":
                write_source_pdf(os.path.join(media, "copies", "final", "copy_%s_corrected.pdf" % copy_id),
                                 "Copie corrigee %s" % copy_id[:8])
    pages = common.write_page_images(cur, media, [c for group in GROUPS for c in ids[group]])
    if count:
        write_tiny_pages(cur, media, ids["bulk"])
    for copy_id in ids["missing_pages"]:
        for rel in pages.get(copy_id, []):
            os.remove(os.path.join(media, rel))
    for copy_id in ids["unreadable_pages"]:
        with open(os.path.join(media, pages[copy_id][0]), "wb") as out:
            out.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    result = dict(("%s_copy_ids" % group, ids[group]) for group in GROUPS)
    result["bulk_copy_ids"] = ids.get("bulk", [])
    result.update(exam_id=exam, counts=counts, media_root=media, page_images=pages)
    return json.loads(json.dumps(result))
