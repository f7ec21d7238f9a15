"""Shared plumbing of the Korrigo stand-in: configuration, database connection, schema-version
detection, JSON logging, and the Redis-backed store of the metrics that the Celery worker produces.

There is exactly one way of doing each of these things; backend, worker, seed and migrate all use it.
Compatible with Debian bookworm's packages (psycopg2 2.9.5, redis 4.3, celery 5.2, prometheus_client
0.16) and with current PyPI releases.
"""

import datetime
import json
import logging
import logging.handlers
import os
import re
import sys
import time

# --------------------------------------------------------------------------------------------
# Configuration (environment of the stack's containers; everything on 127.0.0.1)
# --------------------------------------------------------------------------------------------

DEFAULT_DSN = "postgresql://korrigo:stack-secret@127.0.0.1:55432/korrigo"
DEFAULT_REDIS_URL = "redis://127.0.0.1:56379/0"
DEFAULT_BACKEND_PORT = 58088
SCHEMA_VERSIONS = ("head", "8f16b75")

# Django choices of exams.Copy.status (identical at HEAD and 8f16b75).
COPY_STATUSES = ("STAGING", "READY", "LOCKED", "GRADING_IN_PROGRESS", "GRADING_FAILED", "GRADED")
# Django choices of grading.GradingEvent.action.
EVENT_ACTIONS = ("IMPORT", "VALIDATE", "LOCK", "UNLOCK", "CREATE_ANN", "UPDATE_ANN", "DELETE_ANN",
                 "FINALIZE", "EXPORT")

# core/prometheus.py: http_request_duration_seconds buckets (5 ms ... 10 s).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# grading/metrics.py: import/finalize duration buckets.
GRADING_DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def database_url():
    return os.environ.get("DATABASE_URL") or DEFAULT_DSN


def redis_url():
    return os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def result_backend_url():
    return os.environ.get("CELERY_RESULT_BACKEND") or redis_url()


def schema_version_env(default="head"):
    version = (os.environ.get("KORRIGO_SCHEMA_VERSION") or default).strip()
    if version not in SCHEMA_VERSIONS:
        raise ValueError("KORRIGO_SCHEMA_VERSION must be one of %s, not %r" % (SCHEMA_VERSIONS, version))
    return version


def media_root():
    """$MEDIA_ROOT; else /app/media in the containers, or on the host the directory compose mounts there."""
    if os.environ.get("MEDIA_ROOT"):
        return os.environ["MEDIA_ROOT"]
    if os.path.isdir("/app/media"):
        return "/app/media"
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".run", "media")


def log_dir():
    return os.environ.get("KORRIGO_LOG_DIR") or "/app/logs"


def backend_port():
    return int(os.environ.get("KORRIGO_BACKEND_PORT") or DEFAULT_BACKEND_PORT)


def metrics_token():
    return os.environ.get("METRICS_TOKEN") or ""


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------

def connect(dsn=None, retries=0, delay=1.0, logger=None, **kwargs):
    """Open a psycopg2 connection (autocommit off). ``retries`` > 0 retries OperationalError
    (DB not up yet) that many times, ``retries=None`` forever; ``delay`` seconds between tries."""
    import psycopg2

    dsn = dsn or database_url()
    kwargs.setdefault("connect_timeout", 5)
    kwargs.setdefault("application_name", "korrigo-stand-in")
    attempt = 0
    while True:
        try:
            return psycopg2.connect(dsn, **kwargs)
        except psycopg2.OperationalError as exc:
            attempt += 1
            if retries is not None and attempt > retries:
                raise
            if logger is not None:
                logger.warning("Database not reachable (attempt %d): %s", attempt,
                               str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            time.sleep(delay)


def dsn_with_dbname(dsn, dbname):
    """Same connection parameters, another database (works for URIs and key=value DSNs)."""
    from psycopg2.extensions import make_dsn

    return make_dsn(dsn, dbname=dbname)


def plain_cursor(conn):
    """A tuple cursor whatever the connection's cursor_factory (callers may pass a connection made
    with RealDictCursor)."""
    import psycopg2.extensions

    return conn.cursor(cursor_factory=psycopg2.extensions.cursor)


class transaction:
    """``with transaction(conn) as cur:`` one transaction on ``conn`` with a tuple cursor, committed
    on success and rolled back on error. Works on autocommit connections too (autocommit is switched
    off for the block and restored). A transaction already open on a non-autocommit connection is
    part of the block (committed with it)."""

    def __init__(self, conn):
        self.conn = conn
        self.autocommit = conn.autocommit

    def __enter__(self):
        if self.autocommit:
            self.conn.autocommit = False
        self.cur = plain_cursor(self.conn)
        return self.cur

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            try:
                self.cur.close()
            finally:
                if self.autocommit:
                    self.conn.autocommit = True
        return False


def existing_tables(cur):
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {row[0] for row in cur.fetchall()}


def detect_schema_version(conn):
    """'head' or '8f16b75' from the columns present (None when Korrigo's tables are absent).

    HEAD has exams_exam.upload_mode (exams.0017) and students_student.date_naissance; 8f16b75 has
    neither and still has students_student.ine.
    """
    with plain_cursor(conn) as cur:
        cur.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name IN ('exams_exam', 'students_student')"
        )
        cols = set(cur.fetchall())
    if not any(t == "exams_exam" for t, _column in cols):
        return None
    if ("exams_exam", "upload_mode") in cols:
        return "head"
    return "8f16b75"


# --------------------------------------------------------------------------------------------
# Logging: Korrigo's JSON lines (core/logging.py ViatiqueJSONFormatter) to $KORRIGO_LOG_DIR/django.log
# --------------------------------------------------------------------------------------------

_EXTRA_KEYS = ("request_id", "path", "method", "status_code", "user_id", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per line with Korrigo's keys: timestamp, level, logger, module, function,
    line, message, and when present request_id, path, method, status_code, user_id, duration_ms,
    exc_info (a single string)."""

    # Korrigo's formatter calls self.formatTime(record, self.datefmt): "2026-11-30 00:50:25,940" (UTC).
    converter = time.gmtime

    def format(self, record):
        entry = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is None or (key == "user_id" and not value):
                continue
            if key == "duration_ms":
                value = round(float(value), 2)
            entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# Korrigo's 'verbose' console format.
CONSOLE_FORMAT = "%(levelname)s %(asctime)s %(module)s %(process)d %(thread)d %(message)s"


def setup_logging(level=None, log_file="django.log", console=True):
    """Configure the root logger: JSON lines to $KORRIGO_LOG_DIR/<log_file> (skipped if the directory
    cannot be created) and Korrigo's verbose text format on stderr. Idempotent."""
    root = logging.getLogger()
    if getattr(root, "_korrigo_configured", False):
        return root
    level = level or os.environ.get("KORRIGO_LOG_LEVEL", "INFO")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        # one INFO line per HTTP request (healthchecks every few seconds) stays in the JSON file only
        stream.addFilter(lambda record: record.name != "metrics" or record.levelno >= logging.WARNING)
        root.addHandler(stream)
    if log_file:
        directory = log_dir()
        try:
            os.makedirs(directory, exist_ok=True)
            # WatchedFileHandler: backend and worker append to the same file (as Korrigo's two
            # containers share backend/logs/); an external rotation/truncation is followed.
            handler = logging.handlers.WatchedFileHandler(os.path.join(directory, log_file), encoding="utf-8")
            handler.setFormatter(JsonFormatter())
            root.addHandler(handler)
        except OSError as exc:
            root.warning("JSON log file disabled (%s): %s", directory, exc)
    root._korrigo_configured = True
    return root


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

_UUID_RE = re.compile(r"/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_NUM_RE = re.compile(r"/\d+")


def normalize_path(path):
    """Korrigo's MetricsMiddleware._normalize_path: UUID segments -> /<uuid>, numbers -> /<id>."""
    path = _UUID_RE.sub("/<uuid>", path)
    return _NUM_RE.sub("/<id>", path)


def pages_bucket(pages):
    """grading/metrics.py _get_pages_bucket."""
    if pages <= 10:
        return "1-10"
    if pages <= 50:
        return "11-50"
    if pages <= 100:
        return "51-100"
    return "100+"


def retry_bucket(attempt):
    """grading/metrics.py: retry_attempt label is '1', '2' or '3+'."""
    return "3+" if attempt >= 3 else str(int(attempt))


# Metrics that Korrigo keeps in process memory but that the stand-in's worker produces in another
# container: stored in Redis, exported by the backend's /metrics at scrape time.
# name -> (type, help, label names, buckets)
SHARED_METRICS = {
    "grading_import_duration_seconds": (
        "histogram", "PDF import duration distribution in seconds", ("status", "pages_bucket"),
        GRADING_DURATION_BUCKETS),
    "grading_finalize_duration_seconds": (
        "histogram", "PDF finalization duration distribution in seconds", ("status", "retry_attempt"),
        GRADING_DURATION_BUCKETS),
    "grading_ocr_errors_total": (
        "counter", "Total OCR/rasterization errors encountered", ("error_type",), None),
    "grading_lock_conflicts_total": (
        "counter", "Total lock conflicts encountered", ("conflict_type",), None),
}

METRIC_KEY_PREFIX = "korrigo:metrics:"


def redis_client(url=None, timeout=2.0):
    import redis

    # health_check_interval: a pooled connection idle for a while is PINGed first, so a Redis
    # restart costs no failed command.
    return redis.Redis.from_url(url or redis_url(), socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=5)


def _fmt_le(bound):
    return "+Inf" if bound == float("inf") else repr(float(bound))


class MetricStore:
    """Counters and histograms kept in Redis hashes, one hash per metric
    (``korrigo:metrics:<name>``), fields ``<labels json>`` for counters and
    ``<labels json>|le=<bound>`` / ``|sum`` / ``|count`` (cumulative) for histograms."""

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = redis_client()
        return self._client

    @staticmethod
    def _labels_key(name, labels):
        spec = SHARED_METRICS[name]
        missing = set(spec[2]) ^ set(labels)
        if missing:
            raise ValueError("metric %s takes labels %s, got %s" % (name, spec[2], sorted(labels)))
        return json.dumps({k: str(labels[k]) for k in spec[2]}, sort_keys=True)

    def inc(self, name, labels, amount=1.0):
        if SHARED_METRICS[name][0] != "counter":
            raise ValueError("%s is not a counter" % name)
        self.client.hincrbyfloat(METRIC_KEY_PREFIX + name, self._labels_key(name, labels), float(amount))

    def observe(self, name, labels, value):
        kind, _help, _labels, buckets = SHARED_METRICS[name]
        if kind != "histogram":
            raise ValueError("%s is not a histogram" % name)
        key = self._labels_key(name, labels)
        hkey = METRIC_KEY_PREFIX + name
        pipe = self.client.pipeline()
        for bound in tuple(buckets) + (float("inf"),):
            if value <= bound:
                pipe.hincrbyfloat(hkey, "%s|le=%s" % (key, _fmt_le(bound)), 1.0)
        pipe.hincrbyfloat(hkey, key + "|sum", float(value))
        pipe.hincrbyfloat(hkey, key + "|count", 1.0)
        pipe.execute()

    def reset(self):
        keys = [METRIC_KEY_PREFIX + name for name in SHARED_METRICS]
        self.client.delete(*keys)

    def read(self):
        """{name: {labels_json: value}} for counters, {name: {labels_json: {'buckets': {le: n},
        'sum': s, 'count': c}}} for histograms."""
        pipe = self.client.pipeline()
        names = list(SHARED_METRICS)
        for name in names:
            pipe.hgetall(METRIC_KEY_PREFIX + name)
        raw = pipe.execute()
        out = {}
        for name, fields in zip(names, raw):
            kind = SHARED_METRICS[name][0]
            data = {}
            for field, value in fields.items():
                field = field.decode() if isinstance(field, bytes) else field
                value = float(value)
                if kind == "counter":
                    data[field] = value
                    continue
                key, _sep, part = field.rpartition("|")
                entry = data.setdefault(key, {"buckets": {}, "sum": 0.0, "count": 0.0})
                if part.startswith("le="):
                    entry["buckets"][part[3:]] = value
                elif part in ("sum", "count"):
                    entry[part] = value
            out[name] = data
        return out


class SharedMetricsCollector:
    """prometheus_client custom collector exporting the MetricStore's content at scrape time.
    Redis down: the families are still described, without samples (logged once per scrape)."""

    def __init__(self, store=None, logger=None):
        self.store = store or MetricStore()
        self.logger = logger or logging.getLogger("metrics")

    def _families(self):
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        families = {}
        for name, (kind, helptext, labels, _buckets) in SHARED_METRICS.items():
            if kind == "counter":
                families[name] = CounterMetricFamily(name, helptext, labels=list(labels))
            else:
                families[name] = HistogramMetricFamily(name, helptext, labels=list(labels))
        return families

    def describe(self):
        return list(self._families().values())

    def collect(self):
        families = self._families()
        data = {}
        for attempt in (1, 2):  # a connection broken by a Redis restart fails once
            try:
                data = self.store.read()
                break
            except Exception as exc:  # redis down: export the families empty, never break the scrape
                if attempt == 2:
                    self.logger.warning("Cannot read worker metrics from Redis: %s", exc)
        for name, series in data.items():
            kind, _help, labels, buckets = SHARED_METRICS[name]
            for key in sorted(series):
                label_values = [json.loads(key)[label] for label in labels]
                if kind == "counter":
                    families[name].add_metric(label_values, series[key])
                    continue
                entry = series[key]
                cumulative = []
                for bound in tuple(buckets) + (float("inf"),):
                    le = _fmt_le(bound)
                    cumulative.append((le if le == "+Inf" else str(float(bound)), entry["buckets"].get(le, 0.0)))
                families[name].add_metric(label_values, cumulative, entry.get("sum", 0.0))
        return list(families.values())


def json_default(value):
    """json.dumps default for rows read from PostgreSQL (uuid, datetime, Decimal)."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def pymupdf():
    """PyMuPDF under its current name, or Debian bookworm's python3-fitz 1.21 (only `fitz` there); the
    `fitz` name prints a deprecation warning on stdout with current releases, which breaks JSON output."""
    try:
        import pymupdf as module  # PyMuPDF >= 1.24
    except ImportError:
        import fitz as module
    return module


def page_png(label, width=298, height=421):
    """Bytes of one scanned page as PDFSplitter / import_pdf leave it (a PNG; small, to keep seeding quick)."""
    fitz = pymupdf()
    doc = fitz.open()
    page = doc.new_page(width=width, height=height)
    page.insert_text(fitz.Point(24, 40), label, fontsize=10)
    page.draw_rect(fitz.Rect(20, 60, width - 20, height - 20), color=(0, 0, 0), width=1)
    data = page.get_pixmap(dpi=72).tobytes("png")
    doc.close()
    return data


def write_page_images(cur, media, copy_ids):
    """Write every page image the booklets of ``copy_ids`` name (pages_images, relative to ``media``); returns
    {copy id: [relative paths]}."""
    cur.execute("SELECT cb.copy_id::text, b.pages_images FROM exams_copy_booklets cb"
                " JOIN exams_booklet b ON b.id = cb.booklet_id WHERE cb.copy_id = ANY(%s::uuid[])"
                " ORDER BY cb.copy_id, b.start_page", (list(copy_ids),))
    written = {}
    for copy_id, pages in cur.fetchall():
        for rel in pages or []:
            path = os.path.join(media, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as out:
                out.write(page_png("%s - %s" % (copy_id[:8], os.path.basename(rel))))
            written.setdefault(copy_id, []).append(rel)
    return written
