"""The stand-in backend's HTTP surface, with the database and Redis replaced by doubles."""
import json
import threading
import urllib.error
import urllib.request
import uuid

import pytest

pytest.importorskip("prometheus_client")

from korrigo_stack import backend, common  # noqa: E402
from stack_fakes import FakeRedis  # noqa: E402

COPY_ID = str(uuid.uuid4())


class FakeDB:
    def __init__(self):
        self.up = True

    def query(self, sql, params=None):
        if not self.up:
            raise RuntimeError("connection refused")
        if "GROUP BY status" in sql:
            return [("LOCKED", 7), ("READY", 3), ("LEGACY", 1)]
        if "WHERE id = %s" in sql:
            if params[0] != COPY_ID:
                return []
            return [(COPY_ID, "IMPORT-ABCDEF12", "READY", str(uuid.uuid4()), None, None, None, None, 0, None)]
        if "FROM exams_copy" in sql:
            return [(COPY_ID, "IMPORT-ABCDEF12", "READY")]
        return [(1,)]


class FakeApp:
    def __init__(self):
        self.db = FakeDB()
        self.store = common.MetricStore(FakeRedis())
        self.redis_up = True
        self.registry, self.requests_total, self.request_duration = backend.build_registry(self.db, self.store)

    def check_database(self):
        try:
            self.db.query("SELECT 1")
            return True, "connected"
        except Exception as exc:
            return False, str(exc)

    def check_redis(self):
        return (True, "connected") if self.redis_up else (False, "Connection refused")


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "")
    app = FakeApp()
    srv = backend.make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = "http://127.0.0.1:%d" % srv.server_address[1]
    yield app, base
    srv.shutdown()
    srv.server_close()


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_health_endpoints(server):
    app, base = server
    status, body, headers = get(base + "/api/health/")
    assert status == 200 and json.loads(body)["status"] == "healthy" and headers["X-Request-ID"]
    app.redis_up = False
    status, body, _headers = get(base + "/api/health/")
    assert status == 503 and json.loads(body)["status"] == "unhealthy" and json.loads(body)["cache"] == "disconnected"
    app.redis_up, app.db.up = True, False
    status, body, _headers = get(base + "/api/health/ready/")
    assert status == 503 and json.loads(body)["database"] == "disconnected"
    assert get(base + "/api/health/live/")[0] == 200


def test_metrics_token(server, monkeypatch):
    _app, base = server
    assert get(base + "/metrics")[0] == 200
    monkeypatch.setenv("METRICS_TOKEN", "s3cret")
    assert get(base + "/metrics")[0] == 403
    assert get(base + "/metrics?token=nope")[0] == 403
    assert get(base + "/metrics?token=s3cret")[0] == 200
    assert get(base + "/metrics", {"X-Metrics-Token": "s3cret"})[0] == 200


def test_requests_are_counted_with_korrigo_path_templates(server):
    app, base = server
    assert get(base + "/api/copies/")[0] == 200
    status, body, _headers = get(base + "/api/copies/%s/" % COPY_ID)
    assert status == 200 and json.loads(body)["anonymous_id"] == "IMPORT-ABCDEF12"
    assert get(base + "/api/copies/%s/" % uuid.uuid4())[0] == 404
    assert get(base + "/api/_debug/slow/?seconds=0.06")[0] == 200
    app.store.inc("grading_ocr_errors_total", {"error_type": "FileDataError"})
    _s, text, headers = get(base + "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",path="/api/copies/<uuid>/",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",path="/api/copies/<uuid>/",status="404"} 1.0' in text
    assert 'http_requests_total{method="GET",path="/api/copies/",status="200"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.05",method="GET",path="/api/_debug/slow/"} 0.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.1",method="GET",path="/api/_debug/slow/"} 1.0' in text
    assert 'grading_copies_by_status{status="LOCKED"} 7.0' in text
    assert 'grading_copies_by_status{status="GRADING_FAILED"} 0.0' in text
    assert 'grading_copies_by_status{status="LEGACY"} 1.0' in text
    assert 'grading_ocr_errors_total{error_type="FileDataError"} 1.0' in text
    for name in ("grading_import_duration_seconds histogram", "grading_finalize_duration_seconds histogram",
                 "grading_lock_conflicts_total counter"):
        assert "# TYPE " + name in text


def test_unknown_path_and_method(server):
    _app, base = server
    assert get(base + "/nowhere")[0] == 404
    request = urllib.request.Request(base + "/api/copies/", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 405
