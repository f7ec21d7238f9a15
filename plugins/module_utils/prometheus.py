# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text format and PromQL's histogram_quantile, in one place.

Used by the korrigo_latency_facts module (on the managed host) and by the korrigo.ops filters
(on the controller): both parse with prometheus_client's own parser and compute quantiles exactly as
PromQL's ``histogram_quantile`` does (promql/quantile.go ``bucketQuantile``): buckets sorted by
upper bound, a missing ``+Inf`` bucket gives NaN, non-monotonic counts are made monotonic, the rank
``q * observations`` is located in the first bucket whose cumulative count reaches it and the value
is interpolated linearly inside that bucket (lower bound 0 for the first bucket); a rank in the
``+Inf`` bucket returns the highest finite upper bound.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import math

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

# Found now, imported when first parsed: every korrigo.ops filter file is loaded for each templated task, and the
# import alone (30 ms) would cost every task of every playbook.
PROMETHEUS_IMPORT_ERROR = None
try:
    HAS_PROMETHEUS_CLIENT = importlib.util.find_spec('prometheus_client') is not None
except (ImportError, ValueError):
    HAS_PROMETHEUS_CLIENT = False
if not HAS_PROMETHEUS_CLIENT:
    PROMETHEUS_IMPORT_ERROR = 'No module named prometheus_client'


def _metric_families(text):
    from prometheus_client.parser import text_string_to_metric_families
    return text_string_to_metric_families(text)


LATENCY_METRIC = 'http_request_duration_seconds'
DEFAULT_QUANTILES = (0.5, 0.95, 0.99)


def parse_metrics(text):
    """Samples of a Prometheus text exposition: [{'name', 'labels', 'value'}], in exposition order."""
    if not HAS_PROMETHEUS_CLIENT:
        raise KorrigoError("the prometheus_client Python library is required where Prometheus metrics are parsed "
                           "(pip install prometheus-client; on the controller for the korrigo.ops filters, on "
                           "the managed host for korrigo_latency_facts)", exception=PROMETHEUS_IMPORT_ERROR)
    if not isinstance(text, str):
        raise KorrigoError("Prometheus metrics must be text, got %s" % type(text).__name__)
    try:
        return [{'name': s.name, 'labels': dict(s.labels), 'value': float(s.value)}
                for family in _metric_families(text) for s in family.samples]
    except (ValueError, TypeError, IndexError, KeyError) as err:
        raise KorrigoError("not a Prometheus text exposition: %s" % err)


def _upper_bound(le):
    text = str(le).strip()
    if text in ('+Inf', 'Inf', 'inf', '+inf'):
        return float('inf')
    return float(text)


def bucket_quantile(q, buckets):
    """PromQL's bucketQuantile. ``buckets``: iterable of (upper bound, cumulative count)."""
    if q is None or math.isnan(q):
        return float('nan')
    if q < 0:
        return float('-inf')
    if q > 1:
        return float('inf')
    merged = {}
    for bound, count in buckets:  # coalesceBuckets: same upper bound -> counts added
        bound = _upper_bound(bound)
        merged[bound] = merged.get(bound, 0.0) + float(count)
    ordered = sorted(merged.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return float('nan')
    monotonic = []
    highest = 0.0
    for bound, count in ordered:  # ensureMonotonic
        highest = max(highest, count)
        monotonic.append((bound, highest))
    if len(monotonic) < 2:
        return float('nan')
    observations = monotonic[-1][1]
    if observations == 0:
        return float('nan')
    rank = q * observations
    b = len(monotonic) - 1  # sort.Search over every bucket but +Inf
    for index in range(len(monotonic) - 1):
        if monotonic[index][1] >= rank:
            b = index
            break
    if b == len(monotonic) - 1:
        return monotonic[-2][0]
    if b == 0 and monotonic[0][0] <= 0:
        return monotonic[0][0]
    start, end, count = 0.0, monotonic[b][0], monotonic[b][1]
    if b > 0:
        start = monotonic[b - 1][0]
        count -= monotonic[b - 1][1]
        rank -= monotonic[b - 1][1]
    return start + (end - start) * (rank / count)


def _group_key(labels, by):
    if by is None:
        return tuple(sorted((k, v) for k, v in labels.items() if k != 'le'))
    return tuple((k, labels.get(k, '')) for k in by)


def histogram_buckets(samples, metric, by=None):
    """{group labels tuple: [(le, count), ...]} of ``metric``'s _bucket samples, grouped like
    ``sum by (<by>, le)`` (every label but ``le`` when ``by`` is None)."""
    name = metric + '_bucket'
    groups = {}
    for sample in samples:
        if sample['name'] != name or 'le' not in sample['labels']:
            continue
        groups.setdefault(_group_key(sample['labels'], by), []).append((sample['labels']['le'], sample['value']))
    return groups


def histogram_quantile(q, samples, metric, by=None):
    """[{'labels': {...}, 'value': float}] per group, like histogram_quantile(q, sum by (by, le) (metric_bucket))."""
    return [{'labels': dict(key), 'value': bucket_quantile(q, buckets)}
            for key, buckets in sorted(histogram_buckets(samples, metric, by).items())]


def _sum_by(samples, name, by):
    totals = {}
    for sample in samples:
        if sample['name'] == name:
            key = _group_key(sample['labels'], by)
            totals[key] = totals.get(key, 0.0) + sample['value']
    return totals


def finite(value, digits=6):
    """JSON has no NaN/Infinity: None for those, a rounded float otherwise."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, digits)


def quantile_key(q):
    """0.5 -> 'p50', 0.95 -> 'p95', 0.999 -> 'p99.9'."""
    text = ('%g' % (q * 100))
    return 'p' + text


def latency_quantiles(samples, metric=LATENCY_METRIC, quantiles=DEFAULT_QUANTILES, by=('method', 'path')):
    """One entry per group (endpoint by default): count, sum, mean and the quantiles, slowest p95 first."""
    by = list(by) if by is not None else None
    groups = histogram_buckets(samples, metric, by)
    counts = _sum_by(samples, metric + '_count', by)
    sums = _sum_by(samples, metric + '_sum', by)
    rows = []
    for key, buckets in groups.items():
        entry = dict(key)
        count = counts.get(key, max([c for _le, c in buckets] or [0.0]))
        entry['count'] = count
        entry['sum'] = finite(sums.get(key, 0.0))
        entry['mean'] = finite(sums.get(key, 0.0) / count) if count else None
        for q in quantiles:
            entry[quantile_key(q)] = finite(bucket_quantile(q, buckets))
        rows.append((key, entry))
    rank_by = quantile_key(quantiles[1] if len(quantiles) > 1 else quantiles[0])
    rows.sort(key=lambda row: (-(row[1].get(rank_by) or 0.0), -row[1]['count'], row[0]))
    return [entry for _key, entry in rows]


def subtract_samples(later, earlier):
    """Per-series increase between two scrapes (counters, histogram buckets, _count, _sum).

    A series whose value went down was reset (the process restarted): its later value is the
    increase, as PromQL's increase() assumes. Series absent from ``earlier`` count from zero.
    """
    before = dict(((s['name'], tuple(sorted(s['labels'].items()))), s['value']) for s in earlier)
    out = []
    for sample in later:
        old = before.get((sample['name'], tuple(sorted(sample['labels'].items()))), 0.0)
        value = sample['value'] - old if sample['value'] >= old else sample['value']
        out.append({'name': sample['name'], 'labels': dict(sample['labels']), 'value': value})
    return out
