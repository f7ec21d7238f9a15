"""Korrigo's GradingService.finalize_copy, as the stand-in's worker runs it (schema facts, "Finalize").

One transaction with ``SELECT ... FOR UPDATE`` on the copy:

* a GRADED copy is rejected ("Copy already finalized"), and so is any status the version's finalize does
  not accept (HEAD: READY, GRADING_FAILED; 8f16b75: LOCKED, GRADING_FAILED, and there the finalizing user must
  own a valid lock row with its token or, with no lock row, be the copy's ``locked_by``: "Lock required.");
* status GRADING_IN_PROGRESS, ``grading_retries`` + 1, annotations drawn onto the booklets' page images (in
  ``start_page`` order; ``pdf_source`` is never read) into ``copies/final/copy_<id>_corrected.pdf`` (skipped when
  ``final_pdf`` is already set);
* success: GRADED, ``graded_at``, error cleared, FINALIZE event through get_or_create(copy, FINALIZE,
  actor), which raises MultipleObjectsReturned when that actor already has two or more FINALIZE events;
* failure: GRADING_FAILED, ``grading_error_message`` (500 characters), a new FINALIZE event
  ``{"detail", "retries", "success": false}``, an ERROR log and, from the third attempt, a CRITICAL one.

Failures reproduced: an annotation box leaving its page (PyMuPDF cannot place it), no page image at all ("No
pages found to flatten"), a page image MuPDF cannot open, a flattening slower than KORRIGO_FINALIZE_TIMEOUT
seconds. A page image missing from disk is skipped with ``Image not found: <path>`` (the final PDF lacks it).
"""

import json
import logging
import math
import os
import time
import uuid

from korrigo_stack import common

logger = logging.getLogger("grading.services")

FINALIZE_ACCEPTS = {"head": ("READY", "GRADING_FAILED"), "8f16b75": ("LOCKED", "GRADING_FAILED")}


class FinalizeRejected(Exception):
    """Korrigo's ValueError/PermissionError before any change: the copy is left as it was."""


class MultipleObjectsReturned(Exception):
    pass


def final_pdf_path(copy_id):
    return "copies/final/copy_%s_corrected.pdf" % copy_id


def finalize_timeout():
    return float(os.environ.get("KORRIGO_FINALIZE_TIMEOUT", "90"))


def _box_fits(ann):
    values = (ann["x"], ann["y"], ann["w"], ann["h"])
    if any(math.isnan(v) for v in values):
        return False
    x, y, w, h = values
    return x >= 0 and y >= 0 and w >= 0 and h >= 0 and x + w <= 1 and y + h <= 1


def page_images(cur, copy_id):
    """The booklets' pages_images in start_page order, as PDFFlattener.flatten_copy collects them."""
    cur.execute("SELECT b.pages_images FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id"
                " WHERE cb.copy_id = %s ORDER BY b.start_page", (copy_id,))
    images = []
    for (pages,) in cur.fetchall():
        if isinstance(pages, list):
            images.extend(pages)
    return images


def flatten(copy, images, annotations, media_root, deadline):
    """Korrigo's PDFFlattener.flatten_copy: one PDF page per page image (relative to MEDIA_ROOT unless absolute;
    a missing image is skipped with an ERROR log), every annotation drawn on its page; never reads pdf_source.
    Returns the corrected PDF's relative path."""
    fitz = common.pymupdf()

    if not images:
        logger.warning("Copy %s has no pages to flatten.", copy["id"])
        raise ValueError("No pages found to flatten")
    doc = fitz.open()
    try:
        for page_index, image in enumerate(images):
            full_path = image if image.startswith("/") else os.path.join(media_root, image)
            if not os.path.exists(full_path):
                logger.error("Image not found: %s", full_path)
                continue
            img = fitz.open(full_path)
            rect = img[0].rect
            img_pdf = fitz.open("pdf", img.convert_to_pdf())
            img.close()
            page = doc.new_page(width=rect.width, height=rect.height)
            page.show_pdf_page(rect, img_pdf, 0)
            for ann in annotations:
                if ann["page_index"] != page_index:
                    continue
                if time.monotonic() > deadline:
                    raise TimeoutError("timeout: flattening exceeded %ss" % finalize_timeout())
                if not _box_fits(ann):
                    raise RuntimeError("flatten_copy failed: fitz error: annotation %s box (%s, %s, %s, %s) on page %s "
                                       "is outside the page" % (ann["id"], ann["x"], ann["y"], ann["w"], ann["h"],
                                                                ann["page_index"]))
                width, height = rect.width, rect.height
                box = fitz.Rect(ann["x"] * width, ann["y"] * height,
                                (ann["x"] + ann["w"]) * width, (ann["y"] + ann["h"]) * height)
                page.draw_rect(box, color=(0.85, 0, 0), width=1)
                label = ann["content"]
                if ann["score_delta"] is not None:
                    label = "%s (%+d)" % (label, ann["score_delta"])
                page.insert_text(fitz.Point(box.x0 + 2, box.y0 + 10), label, fontsize=8, color=(0.85, 0, 0))
        if time.monotonic() > deadline:
            raise TimeoutError("timeout: flattening exceeded %ss" % finalize_timeout())
        doc.new_page().insert_text(fitz.Point(72, 72), "Copie %s - synthese" % copy["id"], fontsize=12)
        relative = final_pdf_path(copy["id"])
        target = os.path.join(media_root, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        doc.save(target)
    finally:
        doc.close()
    return relative


def _get_or_create_finalize_event(cur, copy_id, actor_id, metadata):
    cur.execute("SELECT id FROM grading_gradingevent WHERE copy_id = %s AND action = 'FINALIZE' AND actor_id = %s",
                (copy_id, actor_id))
    rows = cur.fetchall()
    if len(rows) > 1:
        raise MultipleObjectsReturned("get() returned more than one GradingEvent -- it returned %d!" % len(rows))
    if not rows:
        cur.execute("INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id) "
                    "VALUES (%s, 'FINALIZE', now(), %s, %s, %s)",
                    (str(uuid.uuid4()), json.dumps(metadata), actor_id, copy_id))


def _check_lock(cur, copy_id, user_id, lock_token, locked_by):
    """8f16b75: the finalizing user must own a valid lock row (with its token) or, with no lock row at all, be the
    copy's locked_by - for GRADING_FAILED copies too."""
    cur.execute("SELECT token::text, expires_at > now(), owner_id FROM grading_copylock WHERE copy_id = %s FOR UPDATE",
                (copy_id,))
    row = cur.fetchone()
    if row is None:
        if locked_by != user_id:
            raise FinalizeRejected("Lock required.")
        return False
    token, valid, owner = row
    if not valid:
        raise FinalizeRejected("Lock expired.")
    if owner != user_id:
        raise FinalizeRejected("Copy is locked by another user.")
    if not lock_token:
        raise FinalizeRejected("Missing lock token.")
    if token != str(lock_token):
        raise FinalizeRejected("Invalid lock token.")
    return True


def finalize_copy(conn, copy_id, user_id, lock_token=None, version=None, media_root=None):
    """Returns {'status': 'GRADED'|'GRADING_FAILED', 'retries': n, 'detail': ...}; raises FinalizeRejected."""
    version = version or common.detect_schema_version(conn)
    media_root = media_root or common.media_root()
    with common.transaction(conn) as cur:
        cur.execute("SELECT id::text, status, pdf_source, final_pdf, locked_by_id FROM exams_copy WHERE id = %s"
                    " FOR UPDATE", (copy_id,))
        row = cur.fetchone()
        if row is None:
            raise FinalizeRejected("Copy %s does not exist" % copy_id)
        copy = dict(zip(("id", "status", "pdf_source", "final_pdf", "locked_by_id"), row))
        if copy["status"] == "GRADED":
            raise FinalizeRejected("Copy already finalized")
        if copy["status"] not in FINALIZE_ACCEPTS[version]:
            raise FinalizeRejected("Cannot finalize copy in status %s" % copy["status"])
        if version == "8f16b75":
            if _check_lock(cur, copy_id, int(user_id), lock_token, copy["locked_by_id"]):
                cur.execute("DELETE FROM grading_copylock WHERE copy_id = %s", (copy_id,))
            cur.execute("UPDATE exams_copy SET locked_at = NULL, locked_by_id = NULL WHERE id = %s", (copy_id,))
        cur.execute("UPDATE exams_copy SET status = 'GRADING_IN_PROGRESS', grading_retries = grading_retries + 1 "
                    "WHERE id = %s RETURNING grading_retries", (copy_id,))
        retries = cur.fetchone()[0]
        cur.execute("SELECT id::text, page_index, x, y, w, h, content, score_delta FROM grading_annotation "
                    "WHERE copy_id = %s ORDER BY page_index, created_at", (copy_id,))
        columns = ("id", "page_index", "x", "y", "w", "h", "content", "score_delta")
        annotations = [dict(zip(columns, r)) for r in cur.fetchall()]
        try:
            final_pdf = copy["final_pdf"] or flatten(
                copy, page_images(cur, copy_id), annotations, media_root, time.monotonic() + finalize_timeout())
            final_score = sum(a["score_delta"] or 0 for a in annotations)
            _get_or_create_finalize_event(cur, copy_id, user_id, {"final_score": final_score, "retries": retries})
            cur.execute("UPDATE exams_copy SET status = 'GRADED', graded_at = now(), grading_error_message = NULL, "
                        "final_pdf = %s WHERE id = %s", (final_pdf, copy_id))
            logger.info("Copy %s finalized (score %s, attempt %d)", copy_id, final_score, retries)
            return {"status": "GRADED", "retries": retries, "final_score": final_score}
        except Exception as exc:
            detail = str(exc)
            cur.execute("UPDATE exams_copy SET status = 'GRADING_FAILED', grading_error_message = %s WHERE id = %s",
                        (detail[:500], copy_id))
            cur.execute("INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id) "
                        "VALUES (%s, 'FINALIZE', now(), %s, %s, %s)",
                        (str(uuid.uuid4()), json.dumps({"detail": detail, "retries": retries, "success": False}),
                         user_id, copy_id))
            logger.error("PDF generation failed for copy %s (attempt %d): %s", copy_id, retries, detail)
            if retries >= 3:
                logger.critical("Copy %s failed %d times - manual intervention required", copy_id, retries)
            return {"status": "GRADING_FAILED", "retries": retries, "detail": detail}
