"""The Korrigo Celery worker, with Korrigo's task names and signatures.

    celery -A korrigo_stack.worker worker -l info --concurrency=2 --max-tasks-per-child=50 [-B]

Broker and result backend from $CELERY_BROKER_URL / $CELERY_RESULT_BACKEND (Redis), JSON only,
default queue ``celery`` (the Redis list whose LLEN is the backlog). Tasks registered, as Korrigo's
autodiscovery registers them:

* both versions: ``core.celery.debug_task``, ``grading.tasks.async_import_pdf``,
  ``grading.tasks.async_finalize_copy``, ``grading.tasks.cleanup_orphaned_files``;
* HEAD only ($KORRIGO_SCHEMA_VERSION=head, the default): ``grading.tasks.update_copy_status_metrics``
  (beat, every 60 s), ``exams.tasks.process_document_set``, ``exams.tasks.process_single_document``.

The metrics Korrigo's worker would keep in its own process (OCR errors, import/finalize durations,
lock conflicts) go to Redis through ``common.MetricStore`` so that the backend's /metrics shows them:
use ``record_ocr_error``, ``observe_import``, ``observe_finalize``, ``record_lock_conflict``.
Logs: JSON lines to $KORRIGO_LOG_DIR/django.log (same file as the backend, like Korrigo's shared
backend/logs), Korrigo's verbose text format on stderr.
"""

import logging
import os
import re
import time
import uuid

from celery import Celery
from celery.signals import setup_logging as celery_setup_logging

from korrigo_stack import common

SCHEMA_VERSION = common.schema_version_env()

app = Celery("core")
app.conf.update(
    broker_url=common.redis_url(),
    result_backend=common.result_backend_url(),
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    result_accept_content=["json"],
    timezone="UTC",
    enable_utc=True,
    task_track_started=True,
    task_time_limit=300,
    task_soft_time_limit=270,
    task_default_queue="celery",
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
if SCHEMA_VERSION == "head":
    app.conf.beat_schedule = {
        "update-copy-status-metrics": {
            "task": "grading.tasks.update_copy_status_metrics",
            "schedule": 60.0,
        },
    }


@celery_setup_logging.connect
def _setup_logging(**_kwargs):
    """Celery leaves logging alone when this signal has a receiver: JSON file + verbose console."""
    common.setup_logging()


grading_logger = logging.getLogger("grading")
exams_logger = logging.getLogger("exams.tasks")

NOT_IMPLEMENTED = "not implemented in stand-in yet"

_store = None


def metric_store():
    global _store
    if _store is None:
        _store = common.MetricStore()
    return _store


def _record(fn, *args):
    """Metrics recording never breaks a task (grading/metrics.py catches everything too)."""
    try:
        fn(*args)
    except Exception as exc:
        logging.getLogger("metrics").warning("Failed to record metric: %s", exc)


def record_ocr_error(error_type):
    """grading_ocr_errors_total{error_type} += 1 (Korrigo labels it with the exception class name)."""
    _record(metric_store().inc, "grading_ocr_errors_total", {"error_type": error_type})


def record_lock_conflict(conflict_type):
    """grading_lock_conflicts_total{conflict_type}: already_locked, expired, token_mismatch."""
    _record(metric_store().inc, "grading_lock_conflicts_total", {"conflict_type": conflict_type})


def observe_import(seconds, pages, status):
    """grading_import_duration_seconds{status=success|failed, pages_bucket}."""
    _record(metric_store().observe, "grading_import_duration_seconds",
            {"status": status, "pages_bucket": common.pages_bucket(pages)}, seconds)


def observe_finalize(seconds, attempt, status):
    """grading_finalize_duration_seconds{status=success|failed, retry_attempt=1|2|3+}."""
    _record(metric_store().observe, "grading_finalize_duration_seconds",
            {"status": status, "retry_attempt": common.retry_bucket(attempt)}, seconds)


def _extra(request_id):
    return {"request_id": request_id} if request_id else {}


# --------------------------------------------------------------------------------------------
# core.celery
# --------------------------------------------------------------------------------------------

@app.task(bind=True, ignore_result=True, name="core.celery.debug_task")
def debug_task(self):
    print("Request: %r" % (self.request,))


# --------------------------------------------------------------------------------------------
# grading.tasks
# --------------------------------------------------------------------------------------------

@app.task(bind=True, max_retries=3, default_retry_delay=60, name="grading.tasks.async_finalize_copy")
def async_finalize_copy(self, copy_id, user_id, lock_token=None, request_id=None):
    """Korrigo: GradingService.finalize_copy in the worker (korrigo_stack.finalize); errors are returned."""
    from korrigo_stack import finalize

    grading_logger.info("Starting async finalization for copy %s by user %s", copy_id, user_id, extra=_extra(request_id))
    started = time.monotonic()
    try:
        conn = common.connect()
        try:
            outcome = finalize.finalize_copy(conn, copy_id, user_id, lock_token=lock_token, version=SCHEMA_VERSION)
        finally:
            conn.close()
    except Exception as exc:
        grading_logger.error("Async finalization failed for copy %s (attempt %d/3): %s", copy_id,
                             self.request.retries + 1, exc, extra=_extra(request_id))
        return {"copy_id": str(copy_id), "status": "error", "detail": str(exc)}
    status = "success" if outcome["status"] == "GRADED" else "failed"
    observe_finalize(time.monotonic() - started, outcome["retries"], status)
    if status == "failed":
        return {"copy_id": str(copy_id), "status": "error", "detail": outcome["detail"]}
    return {"copy_id": str(copy_id), "status": "success", "final_score": outcome["final_score"]}


class _TaskMetrics:
    """What GradingService.import_pdf records, through the Redis metric store."""

    @staticmethod
    def ocr_error(error_type):
        record_ocr_error(error_type)

    @staticmethod
    def import_duration(seconds, pages, status):
        observe_import(seconds, pages, status)


@app.task(bind=True, max_retries=3, default_retry_delay=60, name="grading.tasks.async_import_pdf")
def async_import_pdf(self, exam_id, pdf_path, user_id, anonymous_id, request_id=None):
    """Korrigo: GradingService.import_pdf in the worker (korrigo_stack.services). ``anonymous_id`` is ignored
    (the import derives it from the new copy's uuid); the file at ``pdf_path`` is deleted after a successful
    import and left in place on failure. Errors are caught and returned, as Korrigo's task does."""
    from korrigo_stack import services

    grading_logger.info("Starting async PDF import for exam %s, file %s", exam_id, pdf_path, extra=_extra(request_id))
    try:
        conn = common.connect()
        try:
            result = services.import_pdf(conn, exam_id, pdf_path, user_id, metrics=_TaskMetrics())
        finally:
            conn.close()
    except Exception as exc:
        grading_logger.error(
            "Async PDF import failed for exam %s (attempt %d/3): %s", exam_id, self.request.retries + 1, exc,
            extra=_extra(request_id))
        return {"status": "error", "detail": str(exc)}
    try:
        os.remove(pdf_path)
    except OSError as exc:
        grading_logger.warning("Could not delete temporary file %s: %s", pdf_path, exc)
    grading_logger.info("Async PDF import done for exam %s: copy %s, %d pages", exam_id, result["copy_id"],
                        result["pages"], extra=_extra(request_id))
    return dict(result, status="success")


@app.task(name="grading.tasks.cleanup_orphaned_files")
def cleanup_orphaned_files():
    """Remove files older than 24 h from MEDIA_ROOT/temp_uploads; returns {'removed_count': n}
    (Korrigo's return value)."""
    grading_logger.info("Starting orphaned file cleanup")
    removed_count = 0
    temp_dir = os.path.join(common.media_root(), "temp_uploads")
    if os.path.exists(temp_dir):
        cutoff_time = time.time() - 24 * 3600
        for filename in os.listdir(temp_dir):
            filepath = os.path.join(temp_dir, filename)
            try:
                if not os.path.isfile(filepath) or os.path.getmtime(filepath) >= cutoff_time:
                    continue
                os.remove(filepath)
                removed_count += 1
            except Exception as exc:
                grading_logger.error("Failed to remove orphaned file %s: %s", filepath, exc, exc_info=True)
        grading_logger.info("Cleaned up %d orphaned temp files", removed_count)
    return {"removed_count": removed_count}


def update_copy_status_metrics():
    """Count exams_copy by status (Korrigo sets its in-process gauge; the stand-in's backend reads
    the table at scrape time, so this only logs and returns the counts)."""
    try:
        conn = common.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT status, count(*) FROM exams_copy GROUP BY status")
                counts = dict(cur.fetchall())
        finally:
            conn.close()
        grading_logger.debug("Updated copy status metrics: %s", counts)
        return {"status_counts": counts}
    except Exception as exc:
        grading_logger.error("Failed to update copy status metrics: %s", exc, exc_info=True)
        return {"detail": str(exc)}


# --------------------------------------------------------------------------------------------
# exams.tasks (HEAD): text extraction of the exam documents (sujet, corrigé, barème)
# --------------------------------------------------------------------------------------------

_EXERCISE = re.compile(r"(?:EXERCICE|Exercice)\s*(\d+)", re.IGNORECASE)


def _chunks(pages_text, doc_type):
    """Korrigo's chunking, reduced to the exercise split: one chunk per 'Exercice N', or one chunk."""
    full_text = "\n".join(text for _page, text in pages_text)
    splits = list(_EXERCISE.finditer(full_text))
    first = pages_text[0][0] if pages_text else None
    last = pages_text[-1][0] if pages_text else None
    if not splits:
        return [{"text": full_text.strip(), "page_start": first, "page_end": last,
                 "exercise_number": None, "question_label": "", "tags": [doc_type]}]
    chunks = []
    for idx, match in enumerate(splits):
        end = splits[idx + 1].start() if idx + 1 < len(splits) else len(full_text)
        number = int(match.group(1))
        chunks.append({"text": full_text[match.start():end].strip(), "page_start": first, "page_end": last,
                       "exercise_number": number, "question_label": "",
                       "tags": [doc_type, "exercice_%d" % number]})
    return chunks


def process_document_set(self, document_set_id):
    conn = common.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM exams_examdocumentset WHERE id = %s", (str(document_set_id),))
            if cur.fetchone() is None:
                exams_logger.error("DocumentSet %s introuvable.", document_set_id)
                return {"status": "error", "detail": "DocumentSet introuvable"}
            cur.execute("SELECT id::text FROM exams_examdocument WHERE document_set_id = %s ORDER BY uploaded_at",
                        (str(document_set_id),))
            documents = [row[0] for row in cur.fetchall()]
            extraction_ids = []
            for document_id in documents:
                cur.execute("SELECT id::text FROM exams_documenttextextraction WHERE document_id = %s"
                            " AND status IN ('pending', 'failed') ORDER BY created_at DESC LIMIT 1", (document_id,))
                row = cur.fetchone()
                if row is None:
                    new_id = str(uuid.uuid4())
                    cur.execute("INSERT INTO exams_documenttextextraction (id, status, engine, error_message,"
                                " extracted_at, created_at, document_id) VALUES (%s, 'pending', 'pymupdf', NULL,"
                                " NULL, now(), %s)", (new_id, document_id))
                    row = (new_id,)
                extraction_ids.append(row[0])
        conn.commit()
    finally:
        conn.close()
    results = [process_single_document(extraction_id) for extraction_id in extraction_ids]
    return {"status": "done", "results": results}


def process_single_document(self, extraction_id):
    import json

    conn = common.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT d.id::text, d.storage_path, d.doc_type, d.original_filename"
                        " FROM exams_documenttextextraction e JOIN exams_examdocument d ON d.id = e.document_id"
                        " WHERE e.id = %s", (str(extraction_id),))
            row = cur.fetchone()
            if row is None:
                exams_logger.error("Extraction %s introuvable.", extraction_id)
                return {"status": "error", "detail": "Extraction introuvable"}
            document_id, storage_path, doc_type, filename = row
            cur.execute("UPDATE exams_documenttextextraction SET status = 'processing' WHERE id = %s", (str(extraction_id),))
        conn.commit()
        try:
            import fitz

            abs_path = os.path.join(common.media_root(), storage_path)
            if not os.path.exists(abs_path):
                raise FileNotFoundError("Fichier introuvable : %s" % abs_path)
            with fitz.open(abs_path) as pdf:
                pages_text = [(number + 1, pdf[number].get_text()) for number in range(pdf.page_count)]
            chunks = _chunks(pages_text, doc_type)
            with conn.cursor() as cur:
                cur.execute("DELETE FROM exams_documentpage WHERE extraction_id = %s", (str(extraction_id),))
                for number, text in pages_text:
                    cur.execute("INSERT INTO exams_documentpage (id, page_number, page_text, extraction_id)"
                                " VALUES (%s, %s, %s, %s)", (str(uuid.uuid4()), number, text, str(extraction_id)))
                cur.execute("DELETE FROM exams_documentchunk WHERE extraction_id = %s", (str(extraction_id),))
                for index, chunk in enumerate(chunks):
                    cur.execute(
                        "INSERT INTO exams_documentchunk (id, doc_type, chunk_index, page_start, page_end,"
                        " exercise_number, question_label, chunk_text, tags, created_at, extraction_id)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, now(), %s)",
                        (str(uuid.uuid4()), doc_type, index, chunk["page_start"], chunk["page_end"],
                         chunk["exercise_number"], chunk["question_label"], chunk["text"], json.dumps(chunk["tags"]),
                         str(extraction_id)))
                cur.execute("UPDATE exams_documenttextextraction SET status = 'done', extracted_at = now(),"
                            " error_message = NULL WHERE id = %s", (str(extraction_id),))
            conn.commit()
            exams_logger.info("Extraction réussie : %s (%d pages, %d chunks)", filename, len(pages_text), len(chunks))
            return {"status": "done", "document_id": document_id, "pages": len(pages_text), "chunks": len(chunks)}
        except Exception as exc:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("UPDATE exams_documenttextextraction SET status = 'failed', error_message = %s"
                            " WHERE id = %s", (str(exc)[:500], str(extraction_id)))
            conn.commit()
            exams_logger.error("Extraction échouée pour %s: %s", filename, exc, exc_info=True)
            return {"status": "error", "detail": str(exc)}
    finally:
        conn.close()


if SCHEMA_VERSION == "head":
    update_copy_status_metrics = app.task(name="grading.tasks.update_copy_status_metrics")(update_copy_status_metrics)
    process_document_set = app.task(bind=True, max_retries=2, default_retry_delay=30,
                                    name="exams.tasks.process_document_set")(process_document_set)
    process_single_document = app.task(bind=True, max_retries=2, default_retry_delay=30,
                                       name="exams.tasks.process_single_document")(process_single_document)


def registered_task_names():
    """Korrigo's task names this worker registers (without Celery's own celery.* tasks)."""
    return sorted(name for name in app.tasks if not name.startswith("celery."))


__all__ = ["app", "registered_task_names", "record_ocr_error", "record_lock_conflict", "observe_import",
           "observe_finalize"]
