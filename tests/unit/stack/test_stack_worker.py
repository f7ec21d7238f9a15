"""The Celery app: Korrigo's task names/signatures per version, JSON only, cleanup_orphaned_files."""
import inspect
import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("celery")

STACK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "stack")

INSPECT = """
import inspect, json
from korrigo_stack import worker
tasks = {n: str(inspect.signature(worker.app.tasks[n].run)) for n in worker.registered_task_names()}
conf = worker.app.conf
print(json.dumps({"tasks": tasks, "main": worker.app.main, "serializer": conf.task_serializer,
                  "accept": list(conf.accept_content), "result": conf.result_serializer,
                  "queue": conf.task_default_queue,
                  "retries": [worker.app.tasks[n].max_retries for n in ("grading.tasks.async_import_pdf",
                                                                          "grading.tasks.async_finalize_copy")],
                  "delay": worker.app.tasks["grading.tasks.async_import_pdf"].default_retry_delay}))
"""


def inspect_worker(version):
    env = dict(os.environ, KORRIGO_SCHEMA_VERSION=version, PYTHONPATH=STACK)
    out = subprocess.run([sys.executable, "-c", INSPECT], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_head_registers_korrigo_tasks():
    info = inspect_worker("head")
    assert sorted(info["tasks"]) == [
        "core.celery.debug_task", "exams.tasks.process_document_set", "exams.tasks.process_single_document",
        "grading.tasks.async_finalize_copy", "grading.tasks.async_import_pdf", "grading.tasks.cleanup_orphaned_files",
        "grading.tasks.update_copy_status_metrics"]
    assert info["tasks"]["grading.tasks.async_import_pdf"] == "(exam_id, pdf_path, user_id, anonymous_id, request_id=None)"
    assert info["tasks"]["grading.tasks.async_finalize_copy"] == "(copy_id, user_id, lock_token=None, request_id=None)"
    assert info["tasks"]["exams.tasks.process_document_set"] == "(document_set_id)"
    assert (info["main"], info["serializer"], info["accept"], info["result"], info["queue"]) == (
        "core", "json", ["json"], "json", "celery")
    assert info["retries"] == [3, 3] and info["delay"] == 60


def test_8f16b75_registers_only_its_tasks():
    info = inspect_worker("8f16b75")
    assert sorted(info["tasks"]) == ["core.celery.debug_task", "grading.tasks.async_finalize_copy",
                                     "grading.tasks.async_import_pdf", "grading.tasks.cleanup_orphaned_files"]


def test_cleanup_orphaned_files_removes_only_old_temp_uploads(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDIA_ROOT", str(tmp_path))
    from korrigo_stack import worker

    temp = tmp_path / "temp_uploads"
    temp.mkdir()
    old, new = temp / "old.pdf", temp / "new.pdf"
    old.write_bytes(b"%PDF")
    new.write_bytes(b"%PDF")
    past = time.time() - 25 * 3600
    os.utime(old, (past, past))
    assert worker.cleanup_orphaned_files.run() == {"removed_count": 1}
    assert not old.exists() and new.exists()
    assert "request_id" in inspect.signature(worker.async_import_pdf.run).parameters
