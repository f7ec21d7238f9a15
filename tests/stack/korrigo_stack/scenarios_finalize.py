"""Seed scenario ``finalization``: copies whose finalization failed, one group per root cause, plus controls.

Every copy has a real two-page source PDF under MEDIA_ROOT (except the missing-PDF group), two
annotations with CREATE_ANN events, and for failed copies the trail Korrigo's finalize leaves: one
FINALIZE event ``{"detail", "retries", "success": false}`` per failed attempt, ``grading_retries`` and
``grading_error_message``.

Groups (returned as ``<group>_copy_ids``):

* ``out_of_bounds``: an annotation box leaves the page (x + w > 1; the second copy also has a NaN height);
* ``missing_pdf``: the source PDF is gone from disk;
* ``same_actor``: the cause is gone but prof.martin failed twice, so a re-finalize as prof.martin hits
  get_or_create's MultipleObjectsReturned;
* ``worker_died``: stuck in GRADING_IN_PROGRESS for two hours;
* ``unknown``: failed three times with an error nobody recognises (retries exhausted);
* controls: ``graded`` (done), ``failed_once`` (one transient timeout), ``border`` (annotations exactly on
  the page border, valid).
"""

import json
import os

from korrigo_stack import common
from korrigo_stack.seed import _TEACHER_BY_I, scenario

GROUPS = ("out_of_bounds", "missing_pdf", "same_actor", "worker_died", "unknown", "graded", "failed_once",
          "border")
OOB_DETAIL = "flatten_copy failed: fitz error: annotation box is outside the page"
ERRORS = {
    "out_of_bounds": OOB_DETAIL,
    "missing_pdf": "pdf_source not found: copies/source/copy_{id}.pdf",
    "same_actor": "get() returned more than one GradingEvent -- it returned 2!",
    "unknown": "ConnectionResetError: [Errno 104] Connection reset by peer",
    "failed_once": "timeout: flattening exceeded 90.0s",
    "border": OOB_DETAIL,
}
FAILURES = {"out_of_bounds": 1, "missing_pdf": 1, "same_actor": 2, "unknown": 3, "failed_once": 1, "border": 1}


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


@scenario("finalization", "failed finalizations, one group per root cause, plus GRADED/failed-once/border controls")
def build_finalization(ctx, count):
    exam = ctx.create_exam(1, name="Bac blanc de SVT (finalization)")
    sizes = dict((group, 1) for group in GROUPS)
    sizes["out_of_bounds"] = 2
    history = dict(
        importer_id="%(admin)s", imported_at="now() - interval '3 days' - g.i * interval '7 minutes'",
        validator_id="%(admin)s", validated_at="now() - interval '3 days' + interval '30 minutes'",
        corrector_id=_TEACHER_BY_I, dispatch_run_id="%(dispatch_run)s::uuid",
        assigned_at="now() - interval '3 days' + interval '90 minutes'",
        grader_id="%(martin)s", ann_at="now() - interval '1 day'",
        ann1_delta="5 + g.i", ann2_delta="-1",
    )
    for group in GROUPS:
        ctx.load_ids(group, sizes[group])
        exprs = dict(history)
        if group == "graded":
            exprs.update(status="'GRADED'", graded_at="now() - interval '20 hours'", retries="1", final_pdf="true")
        elif group == "worker_died":
            exprs.update(status="'GRADING_IN_PROGRESS'", retries="1")
        else:
            exprs.update(status="'GRADING_FAILED'", retries=str(FAILURES[group]),
                         error_message="replace(%(error)s, '{id}', s.copy::text)")
        ctx.plan(group, sizes[group], params={"error": ERRORS.get(group, "")}, **exprs)
    ids = dict((group, ctx.plan_copy_ids(group)) for group in GROUPS)
    counts = ctx.materialize()
    cur = ctx.cur

    # Korrigo's failure trail: one FINALIZE event per failed attempt, by the teacher who clicked.
    for group, failures in FAILURES.items():
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
                (ids["out_of_bounds"],))
    cur.execute("UPDATE grading_annotation SET h = 'NaN' WHERE copy_id = %s AND page_index = 1",
                (ids["out_of_bounds"][1],))
    cur.execute("UPDATE grading_annotation SET x = 0.75, w = 0.25, y = CASE page_index WHEN 0 THEN 0 ELSE 0.5 END,"
                " h = 0.5 WHERE copy_id = ANY(%s::uuid[])", (ids["border"],))

    media = common.media_root()
    for group in GROUPS:
        for copy_id in ids[group]:
            source = os.path.join(media, "copies", "source", "copy_%s.pdf" % copy_id)
            if group == "missing_pdf":
                if os.path.exists(source):
                    os.remove(source)
                continue
            write_source_pdf(source, "Copie %s (%s)" % (copy_id[:8], group))
            if group == "graded":
                write_source_pdf(os.path.join(media, "copies", "final", "copy_%s_corrected.pdf" % copy_id),
                                 "Copie corrigee %s" % copy_id[:8])
    result = dict(("%s_copy_ids" % group, ids[group]) for group in GROUPS)
    result.update(exam_id=exam, counts=counts, media_root=media)
    return json.loads(json.dumps(result))
