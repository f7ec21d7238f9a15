# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The filters' documentation lives next to this file, one YAML file per filter
# (prometheus_parse.yml, histogram_quantile.yml, latency_quantiles.yml). The logic is shared with the
# korrigo_latency_facts module in plugins/module_utils/prometheus.py.

from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
from ansible_collections.korrigo.ops.plugins.module_utils import prometheus


def _samples(data):
    """Text is parsed; a list of samples (what prometheus_parse returns) is used as is."""
    if isinstance(data, str):
        return prometheus.parse_metrics(data)
    if isinstance(data, list) and all(isinstance(s, dict) and 'name' in s and 'labels' in s and 'value' in s
                                      for s in data):
        return data
    raise KorrigoError("expected Prometheus text or the sample list korrigo.ops.prometheus_parse returns")


def prometheus_parse(text):
    try:
        return prometheus.parse_metrics(text)
    except KorrigoError as err:
        raise AnsibleFilterError(err.msg)


def histogram_quantile(data, q, metric=prometheus.LATENCY_METRIC, by=None):
    try:
        rows = prometheus.histogram_quantile(float(q), _samples(data), metric, by)
    except (KorrigoError, ValueError, TypeError) as err:
        raise AnsibleFilterError(getattr(err, 'msg', str(err)))
    return [{'labels': r['labels'], 'value': prometheus.finite(r['value'])} for r in rows]


def latency_quantiles(data, metric=prometheus.LATENCY_METRIC, quantiles=None, by=None):
    try:
        return prometheus.latency_quantiles(
            _samples(data), metric,
            tuple(float(q) for q in quantiles) if quantiles else prometheus.DEFAULT_QUANTILES,
            tuple(by) if by else ('method', 'path'))
    except (KorrigoError, ValueError, TypeError) as err:
        raise AnsibleFilterError(getattr(err, 'msg', str(err)))


class FilterModule(object):
    def filters(self):
        return {
            'prometheus_parse': prometheus_parse,
            'histogram_quantile': histogram_quantile,
            'latency_quantiles': latency_quantiles,
        }
