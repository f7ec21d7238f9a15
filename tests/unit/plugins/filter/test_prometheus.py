"""filter/prometheus.py: the filters take Prometheus text or parsed samples and return JSON-safe values."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter import prometheus as prom_filter
from ansible_collections.korrigo.ops.plugins.module_utils import prometheus

EXPOSITION = """# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",method="GET",path="/api/copies/"} 10.0
http_request_duration_seconds_bucket{le="0.5",method="GET",path="/api/copies/"} 30.0
http_request_duration_seconds_bucket{le="+Inf",method="GET",path="/api/copies/"} 40.0
http_request_duration_seconds_count{method="GET",path="/api/copies/"} 40.0
"""


def test_missing_prometheus_client_is_a_filter_error(monkeypatch):
    monkeypatch.setattr(prometheus, 'HAS_PROMETHEUS_CLIENT', False)
    with pytest.raises(AnsibleFilterError, match='prometheus_client'):
        prom_filter.prometheus_parse(EXPOSITION)


def test_filters_accept_text_or_samples_and_return_json_safe_values():
    filters = prom_filter.FilterModule().filters()
    from_text = filters['histogram_quantile'](EXPOSITION, 0.5, by=['path'])
    from_samples = filters['histogram_quantile'](filters['prometheus_parse'](EXPOSITION), 0.5, by=['path'])
    assert from_text == from_samples
    assert filters['histogram_quantile'](EXPOSITION, 2)[0]['value'] is None   # +Inf is not JSON
    assert filters['latency_quantiles'](EXPOSITION, quantiles=[0.5])[0]['p50'] is not None
    with pytest.raises(AnsibleFilterError):
        filters['histogram_quantile']({'not': 'samples'}, 0.5)
    with pytest.raises(AnsibleFilterError):
        filters['prometheus_parse']('this is { not prometheus')
