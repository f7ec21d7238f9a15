"""Korrigo's GradingService.import_pdf, the way the worker runs it (shared/korrigo-schema.md, "How Korrigo
imports and finalizes a copy").

One database transaction:

1. the copy: ``status='STAGING'``, ``anonymous_id = 'IMPORT-' + first 8 hex digits of its uuid`` (upper-case);
2. the PDF stored as ``copies/source/copy_<copy uuid>.pdf`` under MEDIA_ROOT (``pdf_source``);
3. every page rasterized with PyMuPDF at ``Matrix(2.0, 2.0)`` into ``copies/pages/<copy uuid>/p000.png``...;
4. one booklet (``start_page=1``, ``end_page=<pages>``, ``pages_images``) linked through exams_copy_booklets;
5. an ``IMPORT`` grading event ``{"filename": <uploaded name>, "pages": <count>}``.

On any error: ``grading_ocr_errors_total{error_type=<exception class>}`` += 1, ERROR log
``Import failed for copy <id>: <error>``, and ``ImportFailed("Rasterization failed: <error>")`` is raised; the
transaction rolls back, the files already written stay on disk (orphans), as in Korrigo.

Works with Debian bookworm's PyMuPDF 1.21 (``import fitz``) and current releases.
"""

import json
import logging
import os
import shutil
import time
import uuid

from korrigo_stack import common

logger = logging.getLogger("grading")

# Korrigo's PDFProcessor renders at 2x (144 dpi).
ZOOM = 2.0


class ImportFailed(ValueError):
    """Korrigo raises ValueError("Rasterization failed: ...")."""


def _fitz():
    try:
        import pymupdf as fitz  # PyMuPDF >= 1.24
    except ImportError:
        import fitz  # Debian's python3-fitz (1.21)
    return fitz


def page_paths(copy_id, count):
    """Relative paths of the page images Korrigo writes for a copy."""
    return ["copies/pages/%s/p%03d.png" % (copy_id, k) for k in range(count)]


def rasterize(pdf_file, media, copy_id):
    """Render every page of ``pdf_file`` into MEDIA_ROOT/copies/pages/<copy_id>/pNNN.png; returns the
    relative paths (pages_images)."""
    fitz = _fitz()
    out_dir = os.path.join(media, "copies", "pages", str(copy_id))
    os.makedirs(out_dir, exist_ok=True)
    doc = fitz.open(pdf_file)
    try:
        if doc.needs_pass:
            raise ValueError("document is encrypted")
        images = page_paths(copy_id, doc.page_count)
        matrix = fitz.Matrix(ZOOM, ZOOM)
        for index, rel in enumerate(images):
            pix = doc[index].get_pixmap(matrix=matrix)
            pix.save(os.path.join(media, rel))
        return images
    finally:
        doc.close()


def import_pdf(conn, exam_id, pdf_path, user_id, filename=None, media=None, metrics=None):
    """GradingService.import_pdf: returns {copy_id, anonymous_id, pages, pdf_source, pages_images}."""
    media = media or common.media_root()
    filename = filename or os.path.basename(pdf_path)
    copy_id = uuid.uuid4()
    anonymous_id = "IMPORT-%s" % copy_id.hex[:8].upper()
    started = time.monotonic()
    pages = 0
    try:
        with common.transaction(conn) as cur:
            pdf_source = "copies/source/copy_%s.pdf" % copy_id
            cur.execute(
                "INSERT INTO exams_copy (id, anonymous_id, final_pdf, status, exam_id, is_identified, student_id,"
                " graded_at, locked_at, locked_by_id, validated_at, pdf_source, grading_error_message,"
                " grading_retries, assigned_corrector_id, dispatch_run_id, assigned_at, global_appreciation)"
                " VALUES (%s, %s, NULL, 'STAGING', %s, false, NULL, NULL, NULL, NULL, NULL, %s, NULL, 0,"
                " NULL, NULL, NULL, NULL)",
                (str(copy_id), anonymous_id, str(exam_id), pdf_source))
            target = os.path.join(media, pdf_source)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(pdf_path, target)
            images = rasterize(target, media, copy_id)
            pages = len(images)
            booklet_id = uuid.uuid4()
            cur.execute(
                "INSERT INTO exams_booklet (id, start_page, end_page, header_image, student_name_guess, exam_id,"
                " pages_images) VALUES (%s, 1, %s, NULL, NULL, %s, %s::jsonb)",
                (str(booklet_id), pages, str(exam_id), json.dumps(images)))
            cur.execute("INSERT INTO exams_copy_booklets (copy_id, booklet_id) VALUES (%s, %s)",
                        (str(copy_id), str(booklet_id)))
            cur.execute(
                "INSERT INTO grading_gradingevent (id, action, \"timestamp\", metadata, actor_id, copy_id)"
                " VALUES (%s, 'IMPORT', now(), %s::jsonb, %s, %s)",
                (str(uuid.uuid4()), json.dumps({"filename": filename, "pages": pages}), user_id, str(copy_id)))
    except Exception as exc:
        if metrics is not None:
            metrics.ocr_error(type(exc).__name__)
            metrics.import_duration(time.monotonic() - started, pages, "failed")
        logger.error("Import failed for copy %s: %s", copy_id, exc)
        raise ImportFailed("Rasterization failed: %s" % exc) from exc
    if metrics is not None:
        metrics.import_duration(time.monotonic() - started, pages, "success")
    return {"copy_id": str(copy_id), "anonymous_id": anonymous_id, "pages": pages,
            "pdf_source": pdf_source, "pages_images": images}
