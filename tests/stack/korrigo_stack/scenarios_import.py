"""Scenario 1 of the incident playbook, import stuck: seed scenarios and real PDFs.

Registered with seed's ``@scenario`` (seed.py imports this module at its end):

``import_stuck``
    STAGING copies whose import never produced pages (no booklet, or a booklet with empty
    ``pages_images``), IMPORT event 30 minutes old, whose source PDF under MEDIA_ROOT is valid (2 copies:
    one without booklet, one with an empty booklet), corrupted beyond MuPDF's repair (1), encrypted
    with a user password (1) or missing (1); plus 1 STAGING copy WITH pages (PDF, PNGs and booklet all
    present: normal, waiting for validation) that must stay untouched. MEDIA_ROOT also gets a temp
    upload older than 24 h, a fresh one, and an orphaned page directory of a copy that does not exist.

Files go to MEDIA_ROOT as the seeding process sees it: ``$KORRIGO_MEDIA_ROOT``, else ``$MEDIA_ROOT``,
else the test stack's ``tests/stack/.run/media`` when ``/app/media`` does not exist (seeding from the
host). Seeding again rewrites the files of the scenario's copies and removes their page directories.

Queued imports (the worker being down while teachers upload)::

    python3 -m korrigo_stack.scenarios_import queue --exam EXAM_ID --user USER_ID [--count 2]

writes valid PDFs into MEDIA_ROOT/temp_uploads and sends ``grading.tasks.async_import_pdf`` through
the broker with the path the worker sees (``--worker-media``, default /app/media).

PDFs are made with PyMuPDF: ``valid_pdf`` (text pages), ``encrypted_pdf`` (AES-256, user password),
``corrupted_pdf`` (a PDF header followed by bytes MuPDF cannot repair), ``heavy_pdf`` (a page whose
rendering takes very long: the "hanging" PDF).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import time

from korrigo_stack import common
from korrigo_stack.seed import scenario

STACK_MEDIA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".run", "media")
WORKER_MEDIA = "/app/media"
ENCRYPTED_USER_PASSWORD = "eleve"


def _fitz():
    try:
        import pymupdf as fitz
    except ImportError:
        import fitz
    return fitz


def media_root():
    for name in ("KORRIGO_MEDIA_ROOT", "MEDIA_ROOT"):
        if os.environ.get(name):
            return os.environ[name]
    if not os.path.isdir(common.media_root()) and os.path.isdir(os.path.dirname(STACK_MEDIA)):
        return STACK_MEDIA
    return common.media_root()


# --------------------------------------------------------------------------------------------
# PDFs
# --------------------------------------------------------------------------------------------

def valid_pdf(pages=3, label="Copie"):
    """Bytes of an A4 PDF with ``pages`` text pages."""
    fitz = _fitz()
    doc = fitz.open()
    for k in range(pages):
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 96), "%s - page %d/%d" % (label, k + 1, pages), fontsize=18)
        page.draw_rect(fitz.Rect(60, 120, 535, 780), color=(0, 0, 0), width=1)
        page.insert_text((80, 160), "Exercice 1 : f(x) = x^2 + %d" % k, fontsize=12)
    data = doc.tobytes()
    doc.close()
    return data


def encrypted_pdf(pages=2):
    """AES-256 with a user password: MuPDF needs the password to open it (``needs_pass``)."""
    fitz = _fitz()
    doc = fitz.open("pdf", valid_pdf(pages, "Copie chiffrée"))
    data = doc.tobytes(encryption=fitz.PDF_ENCRYPT_AES_256, user_pw=ENCRYPTED_USER_PASSWORD, owner_pw="prof")
    doc.close()
    return data


def corrupted_pdf():
    """A PDF header, then bytes with no object, xref or trailer: MuPDF's repair finds nothing to open."""
    garbage = b"".join(hashlib.sha256(b"korrigo-corrupted-%d" % i).digest() for i in range(256))
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + garbage


def heavy_pdf(circles=4000):
    """One page that takes a very long time to render (thousands of large translucent circles)."""
    fitz = _fitz()
    doc = fitz.open()
    page = doc.new_page(width=2000, height=2000)
    shape = page.new_shape()
    for i in range(circles):
        shape.draw_circle(((i * 13) % 2000, (i * 37) % 2000), 900)
    shape.finish(color=(0, 0, 0), fill=(0.4, 0.5, 0.6), fill_opacity=0.3)
    shape.commit()
    data = doc.tobytes()
    doc.close()
    return data


def write_file(path, data, mtime=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".seed-tmp"
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def render_pages(pdf_bytes, media, copy_id):
    """The page images Korrigo's import writes (Matrix(2, 2)); returns the relative paths."""
    fitz = _fitz()
    doc = fitz.open("pdf", pdf_bytes)
    images = []
    for k in range(doc.page_count):
        rel = "copies/pages/%s/p%03d.png" % (copy_id, k)
        os.makedirs(os.path.dirname(os.path.join(media, rel)), exist_ok=True)
        doc[k].get_pixmap(matrix=fitz.Matrix(2.0, 2.0)).save(os.path.join(media, rel))
        images.append(rel)
    doc.close()
    return images


# --------------------------------------------------------------------------------------------
# Seed scenario
# --------------------------------------------------------------------------------------------

STUCK_GROUPS = ("valid", "corrupted", "encrypted", "missing")
# HEAD's individual upload (INDIVIDUAL_A4): STAGING, no booklet, PDF under exams/individual/, no event. Nothing in
# Korrigo ever rasterizes these: uploaded 40 minutes ago they are stuck; ``individual_fresh`` (a minute ago) not yet.
INDIVIDUAL_GROUPS = ("individual", "individual_corrupted")
BATCH_CONTROLS = 4


@scenario("import_stuck", "STAGING copies without pages (import_pdf and individual uploads, valid/corrupted/encrypted/"
                          "missing PDF) next to batch-upload copies and one awaiting validation")
def build_import_stuck(ctx, count):
    """Most copies of the exam come from its batch upload (controls: READY on HEAD, STAGING with pages awaiting
    validation on 8f16b75; their page images are on disk). Stuck: import_pdf copies (IMPORT event 30 minutes old,
    source PDF valid (``count``, default 2: odd ones without booklet, even ones with an empty booklet), corrupted,
    encrypted or missing) and, on HEAD, individual uploads (valid and corrupted PDF). Awaiting: one imported
    STAGING copy WITH pages (normal). MEDIA_ROOT also gets a temp upload older than 24 h, a fresh one, and an
    orphaned page directory of a copy that does not exist."""
    n_valid = count or 2
    # A large incident (``count`` above 10) gets 1-page PDFs, made once, to keep seeding and importing quick.
    valid_pages = 3 if n_valid <= 10 else 1
    head = ctx.version == "head"
    media = media_root()
    exam = ctx.create_exam(1, name="Bac blanc de SVT (import_stuck)")
    kinds = ("copy", "booklet", "ev_import", "exampdf")
    sizes = {"valid": n_valid, "corrupted": 1, "encrypted": 1, "missing": 1}
    for group, n in sizes.items():
        ctx.load_ids(group, n, kinds)
    ctx.load_ids("awaiting", 1, kinds)
    ctx.load_ids("batch", BATCH_CONTROLS, kinds)
    ctx.plan("batch", BATCH_CONTROLS, status="'READY'" if head else "'STAGING'", pages="4",
             validated_at="now() - interval '2 days'" if head else "NULL")
    stuck = dict(origin="'import'", status="'STAGING'", importer_id="%(admin)s",
                 imported_at="now() - interval '30 minutes' - g.i * interval '1 minute'",
                 import_filename="'scan_' || %(grp)s || '_' || g.i || '.pdf'")
    # valid copy 2 (and every even one) has a booklet whose pages_images is empty; the others none.
    ctx.plan("valid", n_valid, booklet_id="CASE WHEN g.i %% 2 = 0 THEN s.booklet END", pages=str(valid_pages),
             **stuck)
    for group in ("corrupted", "encrypted", "missing"):
        ctx.plan(group, 1, booklet_id="NULL::uuid", pages="2", **stuck)
    ctx.plan("awaiting", 1, origin="'import'", status="'STAGING'", importer_id="%(admin)s", pages="3",
             imported_at="now() - interval '2 hours'", import_filename="'scan_awaiting_1.pdf'")
    individual_groups = ()
    if head:
        individual_groups = INDIVIDUAL_GROUPS + ("individual_fresh",)
        individual_exam = ctx.create_exam(2, name="Devoir maison de SVT (import_stuck)", upload_mode="INDIVIDUAL_A4")
        ages = {"individual": "40 minutes", "individual_corrupted": "45 minutes", "individual_fresh": "1 minute"}
        for group in individual_groups:
            n = 2 if group == "individual" else 1
            ctx.load_ids(group, n, kinds)
            ctx.plan(group, n, params={"exam": individual_exam}, origin="'individual'", status="'STAGING'",
                     imported_at="now() - interval '%s' - g.i * interval '1 minute'" % ages[group],
                     import_filename="'eleve_' || replace(%(grp)s, '_', '-') || '_' || g.i || '.pdf'")
    groups = STUCK_GROUPS + ("awaiting", "batch") + individual_groups
    ids = {group: ctx.plan_copy_ids(group) for group in groups}
    counts = ctx.materialize()
    # materialize() gives every planned booklet `pages` images; an empty booklet is what a stuck import left.
    ctx.cur.execute(
        "UPDATE exams_booklet b SET pages_images = '[]'::jsonb, end_page = 0 FROM exams_copy_booklets cb"
        " WHERE cb.booklet_id = b.id AND cb.copy_id = ANY(%s::uuid[])", (ids["valid"],))
    common.write_page_images(ctx.cur, media, ids["batch"])

    files = {}
    valid_bytes = valid_pdf(valid_pages)
    makers = {"valid": lambda: valid_bytes, "corrupted": corrupted_pdf, "encrypted": encrypted_pdf,
              "awaiting": lambda: valid_pdf(3), "individual": lambda: valid_pdf(2),
              "individual_corrupted": corrupted_pdf, "individual_fresh": lambda: valid_pdf(2)}
    ctx.cur.execute("SELECT id::text, pdf_source FROM exams_copy WHERE id = ANY(%s::uuid[])",
                    (sum((ids[g] for g in STUCK_GROUPS + ("awaiting",) + individual_groups), []),))
    sources = dict(ctx.cur.fetchall())
    for group in STUCK_GROUPS + ("awaiting",) + individual_groups:
        for copy_id in ids[group]:
            shutil.rmtree(os.path.join(media, "copies", "pages", copy_id), ignore_errors=True)
            path = os.path.join(media, sources[copy_id])
            data = makers.get(group)
            if data is None:
                if os.path.exists(path):
                    os.remove(path)
                continue
            content = data()
            write_file(path, content)
            files[copy_id] = {"path": sources[copy_id], "sha256": hashlib.sha256(content).hexdigest()}
            if group == "awaiting":
                render_pages(content, media, copy_id)

    old = time.time() - 30 * 3600
    write_file(os.path.join(media, "temp_uploads", "import_stuck_old_upload.pdf"), valid_pdf(1), mtime=old)
    write_file(os.path.join(media, "temp_uploads", "import_stuck_fresh_upload.pdf"), valid_pdf(1))
    orphan = str(ctx.uuid("orphan-copy", 1))
    write_file(os.path.join(media, "copies", "pages", orphan, "p000.png"), b"\x89PNG\r\n\x1a\n")
    stuck_ids = sum((ids[g] for g in STUCK_GROUPS), []) + sum((ids.get(g, []) for g in INDIVIDUAL_GROUPS), [])
    result = {
        "exam_id": exam,
        "media_root": media,
        "valid_copy_ids": ids["valid"],
        "corrupted_copy_ids": ids["corrupted"],
        "encrypted_copy_ids": ids["encrypted"],
        "missing_copy_ids": ids["missing"],
        "awaiting_copy_ids": ids["awaiting"],
        "batch_copy_ids": ids["batch"],
        "stuck_copy_ids": sorted(stuck_ids),
        # What copy_import does with the stuck copies: rasterize the good PDFs, flag the others for re-upload.
        "importable_copy_ids": sorted(ids["valid"] + ids.get("individual", [])),
        "flagged_copy_ids": sorted(ids["corrupted"] + ids["encrypted"] + ids["missing"]
                                   + ids.get("individual_corrupted", [])),
        "orphaned_page_dirs": ["copies/pages/%s" % orphan],
        "old_temp_uploads": ["temp_uploads/import_stuck_old_upload.pdf"],
        "fresh_temp_uploads": ["temp_uploads/import_stuck_fresh_upload.pdf"],
        "files": files,
        "counts": counts,
    }
    for group in individual_groups:
        result["%s_copy_ids" % group] = ids[group]
    return result


# --------------------------------------------------------------------------------------------
# Queued imports
# --------------------------------------------------------------------------------------------

def queue_imports(exam_id, user_id, count=2, media=None, worker_media=WORKER_MEDIA, broker_url=None, prefix="queued"):
    """Write ``count`` valid PDFs into temp_uploads and enqueue one async_import_pdf each (no worker
    needed: the messages wait in the ``celery`` list). Returns the task ids and file names."""
    from celery import Celery

    media = media or media_root()
    app = Celery("core", broker=broker_url or common.redis_url())
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False,
                    broker_connection_max_retries=1)
    queued = []
    try:
        for k in range(1, count + 1):
            name = "%s_upload_%d.pdf" % (prefix, k)
            write_file(os.path.join(media, "temp_uploads", name), valid_pdf(2, "Copie en file %d" % k))
            result = app.send_task("grading.tasks.async_import_pdf",
                                   args=[str(exam_id), "%s/temp_uploads/%s" % (worker_media, name), int(user_id),
                                         None],
                                   queue="celery")
            queued.append({"task_id": result.id, "file": "temp_uploads/%s" % name})
    finally:
        app.close()
    return queued


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.scenarios_import")
    sub = parser.add_subparsers(dest="command", required=True)
    queue = sub.add_parser("queue", help="enqueue async_import_pdf tasks for new uploads")
    queue.add_argument("--exam", required=True)
    queue.add_argument("--user", required=True, type=int)
    queue.add_argument("--count", type=int, default=2)
    queue.add_argument("--media", default=None)
    queue.add_argument("--worker-media", default=WORKER_MEDIA)
    queue.add_argument("--broker", default=None)
    args = parser.parse_args(argv)
    queued = queue_imports(args.exam, args.user, args.count, args.media, args.worker_media, args.broker)
    print(json.dumps({"queued": queued}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
