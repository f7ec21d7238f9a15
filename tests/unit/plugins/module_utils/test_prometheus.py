"""module_utils/prometheus.py: parsing and histogram_quantile, checked against values computed by hand (PromQL's rules)."""
import math

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import prometheus
from ansible_collections.korrigo.ops.plugins.module_utils.database import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils.prometheus import (
    bucket_quantile, histogram_quantile, latency_quantiles, parse_metrics, subtract_samples,
)

# 40 requests: 10 <= 0.1 s, 20 in (0.1, 0.5], 8 in (0.5, 1], 2 above 1 s.
BUCKETS = [('0.1', 10), ('0.5', 30), ('1.0', 38), ('+Inf', 40)]

EXPOSITION = """# HELP http_request_duration_seconds HTTP request latency distribution in seconds
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",method="GET",path="/api/copies/"} 10.0
http_request_duration_seconds_bucket{le="0.5",method="GET",path="/api/copies/"} 30.0
http_request_duration_seconds_bucket{le="1.0",method="GET",path="/api/copies/"} 38.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",path="/api/copies/"} 40.0
http_request_duration_seconds_count{method="GET",path="/api/copies/"} 40.0
http_request_duration_seconds_sum{method="GET",path="/api/copies/"} 14.0
http_request_duration_seconds_bucket{le="0.1",method="POST",path="/api/copies/<uuid>/finalize/"} 0.0
http_request_duration_seconds_bucket{le="0.5",method="POST",path="/api/copies/<uuid>/finalize/"} 0.0
http_request_duration_seconds_bucket{le="1.0",method="POST",path="/api/copies/<uuid>/finalize/"} 0.0
http_request_duration_seconds_bucket{le="5.0",method="POST",path="/api/copies/<uuid>/finalize/"} 45.0
http_request_duration_seconds_bucket{le="+Inf",method="POST",path="/api/copies/<uuid>/finalize/"} 52.0
http_request_duration_seconds_count{method="POST",path="/api/copies/<uuid>/finalize/"} 52.0
http_request_duration_seconds_sum{method="POST",path="/api/copies/<uuid>/finalize/"} 260.0
# HELP http_requests_total Total HTTP requests processed
# TYPE http_requests_total counter
http_requests_total{method="GET",path="/api/copies/",status="200"} 40.0
"""


@pytest.mark.parametrize('q, expected', [
    (0.1, 0.04),    # rank 4 in the first bucket: 0 + 0.1 * 4/10
    (0.25, 0.1),    # rank 10 reaches the first bucket exactly: its upper bound
    (0.5, 0.3),     # rank 20 in (0.1, 0.5]: 0.1 + 0.4 * (20-10)/20
    (0.9, 0.875),   # rank 36 in (0.5, 1]: 0.5 + 0.5 * (36-30)/8
    (0.95, 1.0),    # rank 38 = count of the 1.0 bucket
    (0.99, 1.0),    # rank 39.6 falls in +Inf: the highest finite bound
    (1.0, 1.0),
    (0.0, 0.0),     # rank 0: the first bucket, interpolated from 0
])
def test_bucket_quantile_by_hand(q, expected):
    assert bucket_quantile(q, BUCKETS) == pytest.approx(expected)


def test_bucket_order_does_not_matter():
    assert bucket_quantile(0.5, list(reversed(BUCKETS))) == pytest.approx(0.3)


def test_playbook_example_seven_requests_over_five_seconds():
    # finalize: 45 of 52 within 5 s; p50 rank 26 in (1, 5]: 1 + 4 * 26/45; p95 rank 49.4 lands in +Inf -> 5.
    buckets = [('0.1', 0), ('0.5', 0), ('1.0', 0), ('5.0', 45), ('+Inf', 52)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(1 + 4 * 26 / 45.0)
    assert bucket_quantile(0.95, buckets) == pytest.approx(5.0)


def test_promql_edge_cases():
    assert math.isnan(bucket_quantile(0.5, [('0.1', 1), ('1', 2)]))           # no +Inf bucket
    assert math.isnan(bucket_quantile(0.5, [('0.1', 0), ('+Inf', 0)]))        # no observations
    assert math.isnan(bucket_quantile(0.5, [('+Inf', 3)]))                    # fewer than two buckets
    assert bucket_quantile(-0.1, BUCKETS) == float('-inf')
    assert bucket_quantile(1.1, BUCKETS) == float('inf')
    assert math.isnan(bucket_quantile(float('nan'), BUCKETS))
    # A negative first bound holding the rank is returned as is.
    assert bucket_quantile(0.5, [('-1', 5), ('+Inf', 6)]) == -1.0
    # Non-monotonic counts are made monotonic (the 0.5 bucket counts as 30, not 25).
    assert bucket_quantile(0.9, [('0.1', 10), ('0.5', 30), ('0.75', 25), ('1.0', 38), ('+Inf', 40)]) \
        == pytest.approx(0.75 + 0.25 * 6 / 8.0)


def test_parse_uses_prometheus_client_and_keeps_labels():
    samples = parse_metrics(EXPOSITION)
    names = set(s['name'] for s in samples)
    assert {'http_request_duration_seconds_bucket', 'http_request_duration_seconds_count',
            'http_requests_total'} <= names
    first = samples[0]
    assert first == {'name': 'http_request_duration_seconds_bucket',
                     'labels': {'le': '0.1', 'method': 'GET', 'path': '/api/copies/'}, 'value': 10.0}


def test_histogram_quantile_groups_per_label_set():
    rows = histogram_quantile(0.5, parse_metrics(EXPOSITION), 'http_request_duration_seconds')
    by_path = dict((r['labels']['path'], r['value']) for r in rows)
    assert by_path['/api/copies/'] == pytest.approx(0.3)
    assert by_path['/api/copies/<uuid>/finalize/'] == pytest.approx(1 + 4 * 26 / 45.0)
    assert all('le' not in r['labels'] for r in rows)


def test_sum_by_adds_series_of_the_same_group():
    # Two status series of one endpoint, summed like sum by (path, le): 0.1:2+8, 0.5:6+24, +Inf:10+30.
    samples = [{'name': 'm_bucket', 'labels': {'le': le, 'path': '/a', 'status': st}, 'value': v}
               for st, counts in (('200', (2, 6, 10)), ('500', (8, 24, 30)))
               for le, v in zip(('0.1', '0.5', '+Inf'), counts)]
    rows = histogram_quantile(0.5, samples, 'm', by=['path'])
    assert rows == [{'labels': {'path': '/a'}, 'value': pytest.approx(0.1 + 0.4 * 10 / 20.0)}]
    assert len(histogram_quantile(0.5, samples, 'm')) == 2


def test_latency_quantiles_per_endpoint_slowest_first():
    rows = latency_quantiles(parse_metrics(EXPOSITION))
    assert [r['path'] for r in rows] == ['/api/copies/<uuid>/finalize/', '/api/copies/']
    finalize, copies = rows
    assert finalize['method'] == 'POST' and finalize['count'] == 52 and finalize['p95'] == 5.0
    assert finalize['mean'] == pytest.approx(5.0)
    assert copies['p50'] == pytest.approx(0.3) and copies['p95'] == 1.0 and copies['p99'] == 1.0
    assert copies['mean'] == pytest.approx(0.35)


def test_difference_of_two_scrapes_is_a_rate_window():
    before = parse_metrics(EXPOSITION)
    after = [dict(s, value=s['value'] * 2) for s in before]
    delta = subtract_samples(after, before)
    assert histogram_quantile(0.5, delta, 'http_request_duration_seconds')[0]['value'] == pytest.approx(0.3)
    # A counter that went down was reset: its new value is the increase.
    reset = subtract_samples([{'name': 'c', 'labels': {}, 'value': 3.0}], [{'name': 'c', 'labels': {}, 'value': 9.0}])
    assert reset[0]['value'] == 3.0


def test_missing_prometheus_client_says_what_to_install(monkeypatch):
    monkeypatch.setattr(prometheus, 'HAS_PROMETHEUS_CLIENT', False)
    with pytest.raises(KorrigoError, match='pip install prometheus-client'):
        parse_metrics(EXPOSITION)
