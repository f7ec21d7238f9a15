"""korrigo_log_facts' pure logic: signatures, window, request error rate."""
import datetime
import json

from ansible_collections.korrigo.ops.plugins.module_utils.logs import normalize, parse_time, summarize

NOW = datetime.datetime(2026, 11, 30, 1, 0, 0)
PARAMS = dict(window_minutes=30, levels=['ERROR', 'CRITICAL'], slow_request_ms=5000, list_limit=20)


def line(minutes_ago, level='INFO', message='x', **extra):
    stamp = (NOW - datetime.timedelta(minutes=minutes_ago)).strftime('%Y-%m-%d %H:%M:%S,123')
    return json.dumps(dict(timestamp=stamp, level=level, logger=extra.pop('logger', 'grading.services'),
                           message=message, **extra))


def test_korrigo_timestamp_format_is_parsed():
    assert parse_time('2026-11-30 00:50:25,940') == datetime.datetime(2026, 11, 30, 0, 50, 25, 940000)
    assert parse_time('2026-11-30T00:50:25+00:00') == datetime.datetime(2026, 11, 30, 0, 50, 25)
    assert parse_time('yesterday') is None


def test_signature_hides_ids_and_numbers():
    assert normalize('PDF generation failed for copy 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e (attempt 3)') == \
        'PDF generation failed for copy <uuid> (attempt <n>)'
    assert normalize('task 9f86d081884c7d65 failed\nTraceback...') == 'task <hex> failed'


def test_errors_grouped_by_signature_within_the_window():
    lines = [
        line(5, 'ERROR', 'PDF generation failed for copy 0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e (attempt 1)'),
        line(4, 'ERROR', 'PDF generation failed for copy 1c8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e (attempt 2)'),
        line(3, 'CRITICAL', 'Copy 1c8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e failed 3 times - manual intervention required'),
        line(45, 'ERROR', 'too old to count'),
        line(2, 'WARNING', 'not an error'),
        line(1, 'ERROR', 'Internal Server Error: /api/copies/', logger='django.request',
             exc_info='Traceback (most recent call last):\n  ...\nValueError: boom'),
        'not json at all',
    ]
    facts = summarize(lines, NOW, PARAMS)
    assert facts['errors_total'] == 4 and facts['signatures_total'] == 3 and facts['parse_errors'] == 1
    top = facts['signatures'][0]
    assert top['count'] == 2 and top['signature'] == \
        'ERROR grading.services: PDF generation failed for copy <uuid> (attempt <n>)'
    assert any(s['exception'] == 'ValueError' for s in facts['signatures'])


def test_request_error_rate_counts_each_request_once():
    lines = [line(2, 'INFO', 'GET /api/copies/ 200', logger='metrics', request_id='r%d' % i, status_code=200,
                  duration_ms=10) for i in range(8)]
    lines += [line(1, 'INFO', 'GET /api/x/ 500', logger='metrics', request_id='e1', status_code=500, duration_ms=5),
              line(1, 'ERROR', 'Internal Server Error', logger='django.request', request_id='e1', status_code=500),
              line(1, 'INFO', 'GET /slow 200', logger='metrics', request_id='s1', status_code=200, duration_ms=7000),
              line(1, 'WARNING', 'Slow request detected', logger='metrics', request_id='s1', status_code=200,
                   duration_ms=7000)]
    requests = summarize(lines, NOW, PARAMS)['requests']
    assert requests == {'total': 10, 'errors_5xx': 1, 'error_rate': 0.1, 'slow': 1, 'slow_request_ms': 5000}
