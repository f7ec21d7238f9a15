"""The Korrigo backend's operational surface, without Django.

    python3 -m korrigo_stack.backend [--host 127.0.0.1] [--port $KORRIGO_BACKEND_PORT]
                                     [--no-migrate] [--migrate-timeout SECONDS]

On start it migrates the database to $KORRIGO_SCHEMA_VERSION, retrying until PostgreSQL answers
(Korrigo's entrypoint runs ``manage.py migrate`` before gunicorn), then serves, threaded:

* ``GET /api/health/``        200 {"status": "healthy", ...} when PostgreSQL and Redis answer,
                                503 {"status": "unhealthy", ...} otherwise
* ``GET /api/health/live/``   200 always;  ``GET /api/health/ready/``  like /api/health/
* ``GET /metrics``            Prometheus text; when $METRICS_TOKEN is set, header
                                ``X-Metrics-Token`` or ``?token=`` is required (403 otherwise)
* ``GET /api/copies/``        [{id, anonymous_id, status}] (limit 100, ?status= filter)
* ``GET /api/copies/<uuid>/`` one copy, 404 when absent
* ``GET /api/_debug/slow/?seconds=N``  sleeps N seconds (max 10): latency for the tests

Every request is counted in ``http_requests_total{method,path,status}`` and
``http_request_duration_seconds{method,path}`` with Korrigo's path normalization (uuid -> <uuid>,
number -> <id>), logged as a JSON line in $KORRIGO_LOG_DIR/django.log (request_id, path, method,
status_code, duration_ms), and slow requests (> 5 s) are logged at WARNING like Korrigo's
MetricsMiddleware. The worker's metrics (import/finalize durations, OCR errors, lock conflicts)
come from Redis at scrape time; ``grading_copies_by_status`` is read from exams_copy at scrape time.
"""

import argparse
import hmac
import json
import logging
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from korrigo_stack import common

logger = logging.getLogger("django.request")
metrics_logger = logging.getLogger("metrics")

SLOW_REQUEST_SECONDS = 5.0
MAX_DEBUG_SLEEP = 10.0
COPIES_LIMIT = 100


# --------------------------------------------------------------------------------------------
# Database access (small pool, broken connections replaced: the tests restart PostgreSQL)
# --------------------------------------------------------------------------------------------

class Database:
    def __init__(self, dsn, maxconn=10):
        self.dsn = dsn
        self._lock = threading.Lock()
        self._idle = []
        self._maxidle = maxconn

    def _connect(self):
        conn = common.connect(self.dsn, connect_timeout=3,
                              options="-c statement_timeout=10000 -c lock_timeout=5000")
        conn.autocommit = True
        return conn

    def query(self, sql, params=None):
        """Rows of one read-only statement; one retry on a broken pooled connection."""
        import psycopg2

        for attempt in (1, 2):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            fresh = conn is None
            if conn is None:
                conn = self._connect()
            try:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    rows = cur.fetchall() if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                try:
                    conn.close()
                except Exception:
                    pass
                if fresh or attempt == 2:
                    raise
                continue
            except Exception:
                conn.close()
                raise
            with self._lock:
                if len(self._idle) < self._maxidle:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()
            return rows
        raise AssertionError("unreachable")

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except Exception:
                pass


# --------------------------------------------------------------------------------------------
# Metrics registry (core/prometheus.py + grading/metrics.py)
# --------------------------------------------------------------------------------------------

class CopiesByStatusCollector:
    """grading_copies_by_status{status}: counted in exams_copy at scrape time, one sample per
    status of Korrigo's choices (0 when none) plus any other value found in the column."""

    def __init__(self, db):
        self.db = db

    def describe(self):
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily("grading_copies_by_status", "Current count of copies by status", labels=["status"])]

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("grading_copies_by_status", "Current count of copies by status", labels=["status"])
        try:
            counts = dict(self.db.query("SELECT status, count(*) FROM exams_copy GROUP BY status"))
        except Exception as exc:
            metrics_logger.warning("Cannot count copies by status: %s", exc)
            return [family]
        for status in common.COPY_STATUSES:
            family.add_metric([status], float(counts.pop(status, 0)))
        for status in sorted(counts):
            family.add_metric([status], float(counts[status]))
        return [family]


def build_registry(db, store=None):
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    requests_total = Counter("http_requests_total", "Total HTTP requests processed",
                             ["method", "path", "status"], registry=registry)
    duration = Histogram("http_request_duration_seconds", "HTTP request latency distribution in seconds",
                         ["method", "path"], buckets=list(common.HTTP_DURATION_BUCKETS), registry=registry)
    registry.register(common.SharedMetricsCollector(store, logger=metrics_logger))
    registry.register(CopiesByStatusCollector(db))
    return registry, requests_total, duration


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

class App:
    """State shared by the request handlers."""

    def __init__(self, dsn=None, redis_url=None):
        self.db = Database(dsn or common.database_url())
        self.redis_url = redis_url or common.redis_url()
        self.store = common.MetricStore(common.redis_client(self.redis_url))
        self.registry, self.requests_total, self.request_duration = build_registry(self.db, self.store)

    def check_database(self):
        try:
            self.db.query("SELECT 1")
            return True, "connected"
        except Exception as exc:
            return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def check_redis(self):
        client = common.redis_client(self.redis_url)
        try:
            client.ping()
            return True, "connected"
        except Exception as exc:
            return False, str(exc) or type(exc).__name__
        finally:
            client.connection_pool.disconnect()


class Handler(BaseHTTPRequestHandler):
    server_version = "KorrigoStandIn/1.0"
    protocol_version = "HTTP/1.1"
    app = None  # set by make_server()

    # silence http.server's stderr access log: requests are logged as JSON by _finish()
    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, content_type="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body, default=common.json_default).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-ID", self.request_id)
        self.send_header("X-Response-Time-Ms", "%.2f" % ((time.monotonic() - self.started) * 1000))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.status = status

    def _dispatch(self):
        self.started = time.monotonic()
        self.request_id = self.headers.get("X-Request-ID") or uuid.uuid4().hex
        self.status = 500
        parts = urlsplit(self.path)
        self.route = parts.path
        self.query = parse_qs(parts.query)
        try:
            if self.command not in ("GET", "HEAD"):
                self._send(405, {"detail": 'Method "%s" not allowed.' % self.command})
            else:
                self._route_get()
        except (BrokenPipeError, ConnectionResetError):
            self.status = 499
        except Exception:
            logger.exception("Internal Server Error: %s", self.route,
                             extra={"request_id": self.request_id, "path": self.route, "method": self.command,
                                    "status_code": 500})
            try:
                self._send(500, {"detail": "Internal server error"})
            except Exception:
                pass
        finally:
            self._finish()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _finish(self):
        duration = time.monotonic() - self.started
        path = common.normalize_path(self.route)
        try:
            self.app.requests_total.labels(method=self.command, path=path, status=str(self.status)).inc()
            self.app.request_duration.labels(method=self.command, path=path).observe(duration)
        except Exception as exc:  # metrics never break a request
            metrics_logger.warning("Failed to record Prometheus metrics: %s", exc)
        extra = {"request_id": self.request_id, "path": self.route, "method": self.command,
                 "status_code": self.status, "duration_ms": duration * 1000}
        metrics_logger.info("%s %s %s", self.command, self.route, self.status, extra=extra)
        if duration > SLOW_REQUEST_SECONDS:
            metrics_logger.warning("Slow request detected: %s %s took %.2fs (status %s)",
                                   self.command, self.route, duration, self.status, extra=extra)

    # -- routes ------------------------------------------------------------------------------------
    def _route_get(self):
        route = self.route
        if route == "/metrics" or route == "/metrics/":
            return self._metrics()
        if route == "/api/health/live/":
            return self._send(200, {"status": "alive"})
        if route in ("/api/health/", "/api/health/ready/"):
            return self._health()
        if route == "/api/copies/":
            return self._copies()
        if route.startswith("/api/copies/") and route.endswith("/"):
            return self._copy(route[len("/api/copies/"):-1])
        if route == "/api/_debug/slow/":
            return self._slow()
        if not route.endswith("/") and (route + "/") in (
                "/api/health/", "/api/health/live/", "/api/health/ready/", "/api/copies/", "/api/_debug/slow/"):
            # Django's APPEND_SLASH
            self.send_response(301)
            self.send_header("Location", route + "/")
            self.send_header("Content-Length", "0")
            self.send_header("X-Request-ID", self.request_id)
            self.end_headers()
            self.status = 301
            return None
        return self._send(404, {"detail": "Not found."})

    def _health(self):
        db_ok, db_detail = self.app.check_database()
        redis_ok, redis_detail = self.app.check_redis()
        healthy = db_ok and redis_ok
        body = {
            "status": "healthy" if healthy else "unhealthy",
            "database": "connected" if db_ok else "disconnected",
            "cache": "connected" if redis_ok else "disconnected",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if not db_ok:
            body["database_error"] = db_detail
        if not redis_ok:
            body["cache_error"] = redis_detail
        if not healthy:
            logger.error("Health check failed: database=%s cache=%s", body["database"], body["cache"],
                         extra={"request_id": self.request_id, "path": self.route, "method": self.command})
        return self._send(200 if healthy else 503, body)

    def _metrics(self):
        token = common.metrics_token()
        if token:
            given = self.headers.get("X-Metrics-Token") or (self.query.get("token") or [""])[0]
            if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
                return self._send(403, {"detail": "Forbidden"})
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return self._send(200, generate_latest(self.app.registry), CONTENT_TYPE_LATEST)

    def _copies(self):
        status = (self.query.get("status") or [None])[0]
        sql = "SELECT id::text, anonymous_id, status FROM exams_copy"
        params = []
        if status:
            sql += " WHERE status = %s"
            params.append(status)
        sql += " ORDER BY anonymous_id LIMIT %d" % COPIES_LIMIT
        rows = self.app.db.query(sql, params)
        return self._send(200, [{"id": r[0], "anonymous_id": r[1], "status": r[2]} for r in rows])

    def _copy(self, copy_id):
        try:
            copy_id = str(uuid.UUID(copy_id))
        except ValueError:
            return self._send(404, {"detail": "Not found."})
        rows = self.app.db.query(
            "SELECT id::text, anonymous_id, status, exam_id::text, validated_at, locked_at, locked_by_id,"
            " graded_at, grading_retries, grading_error_message FROM exams_copy WHERE id = %s", (copy_id,))
        if not rows:
            return self._send(404, {"detail": "Not found."})
        keys = ("id", "anonymous_id", "status", "exam_id", "validated_at", "locked_at", "locked_by",
                "graded_at", "grading_retries", "grading_error_message")
        return self._send(200, dict(zip(keys, rows[0])))

    def _slow(self):
        try:
            seconds = float((self.query.get("seconds") or ["1"])[0])
        except ValueError:
            return self._send(400, {"detail": "seconds must be a number"})
        seconds = max(0.0, min(seconds, MAX_DEBUG_SLEEP))
        time.sleep(seconds)
        return self._send(200, {"slept": seconds})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(host, port, app):
    handler = type("BoundHandler", (Handler,), {"app": app})
    return Server((host, port), handler)


def migrate_until_ready(dsn, version, timeout=None):
    """Run migrate() as Korrigo's entrypoint does, retrying while PostgreSQL is unreachable."""
    from korrigo_stack import migrate as migrate_mod

    deadline = None if not timeout else time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            conn = common.connect(dsn, connect_timeout=3)
            try:
                return migrate_mod.migrate(conn, version)
            finally:
                conn.close()
        except migrate_mod.MigrateError:
            raise
        except Exception as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            logging.getLogger("korrigo_stack.migrate").warning(
                "Database not ready (attempt %d): %s", attempt, str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            time.sleep(min(2.0, 0.5 * attempt))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m korrigo_stack.backend", description="Korrigo stand-in backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $KORRIGO_BACKEND_PORT or %d" % common.DEFAULT_BACKEND_PORT)
    parser.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    parser.add_argument("--migrate-timeout", type=float, default=0, help="give up migrating after N s (0: never)")
    args = parser.parse_args(argv)

    common.setup_logging()
    dsn = common.database_url()
    version = common.schema_version_env()
    if not args.no_migrate:
        try:
            migrate_until_ready(dsn, version, args.migrate_timeout or None)
        except Exception as exc:
            logging.getLogger("korrigo_stack.migrate").critical("Migration failed: %s", exc)
            return 1
    app = App(dsn)
    port = args.port or common.backend_port()
    server = make_server(args.host, port, app)

    def stop(signum, _frame):
        logging.getLogger("django").info("Received signal %d, shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logging.getLogger("django").info("Korrigo stand-in backend (schema %s) listening on %s:%d", version, args.host, port)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        app.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def exported_sample_names():
    """Every sample name this backend's /metrics serves: build_registry with one observation of each metric (the
    worker's shared metrics and the request histogram). Tests of the alert rules and the dashboard check their
    PromQL against it."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    class OneOfEach:
        def read(self):
            out = {}
            for name, (kind, _help, labels, buckets) in common.SHARED_METRICS.items():
                key = json.dumps(dict((label, 'x') for label in labels), sort_keys=True)
                if kind == 'counter':
                    out[name] = {key: 1.0}
                else:
                    le = dict((common._fmt_le(b), 1.0) for b in tuple(buckets) + (float('inf'),))
                    out[name] = {key: {'buckets': le, 'sum': 1.0, 'count': 1.0}}
            return out

    class OneStatus:
        def query(self, sql, params=None):
            return [('STAGING', 1)]

    registry, requests_total, duration = build_registry(OneStatus(), OneOfEach())
    requests_total.labels(method='GET', path='/api/copies/', status='200').inc()
    duration.labels(method='GET', path='/api/copies/').observe(0.1)
    names = set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names.update(sample.name for sample in family.samples)
    return names
