"""korrigo_stack.common: path normalization, metric buckets, JSON logs, the Redis metric store."""
import json
import logging
import re
import uuid

import pytest

from korrigo_stack import common
from stack_fakes import FakeRedis


@pytest.mark.parametrize("path, expected", [
    ("/api/copies/%s/" % uuid.uuid4(), "/api/copies/<uuid>/"),
    ("/api/copies/%s/finalize/" % str(uuid.uuid4()).upper(), "/api/copies/<uuid>/finalize/"),
    ("/api/exams/12/copies/", "/api/exams/<id>/copies/"),
    ("/api/health/", "/api/health/"),
    ("/metrics", "/metrics"),
])
def test_normalize_path_like_korrigo_metrics_middleware(path, expected):
    assert common.normalize_path(path) == expected


def test_buckets():
    assert [common.pages_bucket(n) for n in (1, 10, 11, 50, 51, 100, 101)] == [
        "1-10", "1-10", "11-50", "11-50", "51-100", "51-100", "100+"]
    assert [common.retry_bucket(n) for n in (1, 2, 3, 7)] == ["1", "2", "3+", "3+"]
    assert common.HTTP_DURATION_BUCKETS == (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def test_json_formatter_has_korrigo_keys():
    record = logging.LogRecord("grading", logging.ERROR, "/x/services.py", 42, "Import failed for copy %s: %s",
                               ("c1", "boom"), None, func="import_pdf")
    record.request_id, record.status_code, record.duration_ms = "r-1", 500, 12.3456
    entry = json.loads(common.JsonFormatter().format(record))
    assert entry["message"] == "Import failed for copy c1: boom"
    assert {k: entry[k] for k in ("level", "logger", "module", "function", "line")} == {
        "level": "ERROR", "logger": "grading", "module": "services", "function": "import_pdf", "line": 42}
    assert entry["request_id"] == "r-1" and entry["status_code"] == 500 and entry["duration_ms"] == 12.35
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$", entry["timestamp"]) and "path" not in entry


def test_metric_store_and_collector_export_prometheus_text():
    prometheus_client = pytest.importorskip("prometheus_client")
    fake = FakeRedis()
    store = common.MetricStore(fake)
    store.inc("grading_ocr_errors_total", {"error_type": "FileDataError"})
    store.inc("grading_ocr_errors_total", {"error_type": "FileDataError"})
    store.observe("grading_import_duration_seconds", {"status": "success", "pages_bucket": "1-10"}, 0.7)
    store.observe("grading_finalize_duration_seconds", {"status": "failed", "retry_attempt": "3+"}, 200)
    with pytest.raises(ValueError):
        store.inc("grading_ocr_errors_total", {"wrong": "x"})
    with pytest.raises(ValueError):
        store.observe("grading_ocr_errors_total", {"error_type": "x"}, 1)

    registry = prometheus_client.CollectorRegistry()
    registry.register(common.SharedMetricsCollector(store))
    text = prometheus_client.generate_latest(registry).decode()
    assert 'grading_ocr_errors_total{error_type="FileDataError"} 2.0' in text
    assert 'grading_import_duration_seconds_bucket{le="0.5",pages_bucket="1-10",status="success"} 0.0' in text
    assert 'grading_import_duration_seconds_bucket{le="1.0",pages_bucket="1-10",status="success"} 1.0' in text
    assert 'grading_import_duration_seconds_count{pages_bucket="1-10",status="success"} 1.0' in text
    assert 'grading_finalize_duration_seconds_bucket{le="120.0",retry_attempt="3+",status="failed"} 0.0' in text
    assert 'grading_finalize_duration_seconds_bucket{le="+Inf",retry_attempt="3+",status="failed"} 1.0' in text
    assert "# TYPE grading_lock_conflicts_total counter" in text

    fake.fail = True  # Redis down: families still there, no samples, no exception
    text = prometheus_client.generate_latest(registry).decode()
    assert "# TYPE grading_ocr_errors_total counter" in text and "FileDataError" not in text

    fake.fail = False
    store.reset()
    assert store.read()["grading_ocr_errors_total"] == {}
