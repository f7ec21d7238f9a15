"""monitoring/grafana/dashboards/korrigo.json: the incident playbook's eight Appendix C panels, each query valid
PromQL (promtool) on metric names the stand-in backend really exports (korrigo_stack.backend's registry)."""
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(ROOT, 'monitoring', 'grafana', 'dashboards', 'korrigo.json')
PROMTOOL = shutil.which('promtool')

# Appendix C, "Grading Workflow Dashboard", in its order.
PLAYBOOK_PANELS = [
    'Import Duration (p50, p95, p99)', 'Finalize Duration (p50, p95, p99)', 'OCR Errors Rate', 'Lock Conflicts Rate',
    'Copies by Status', 'Celery Queue Length', 'Database Connection Count', 'HTTP Request Latency (p95, p99)',
]
# Series Prometheus makes itself, not the backend.
PROMETHEUS_OWN = {'up', 'ALERTS', 'ALERTS_FOR_STATE'}
KEYWORDS = {'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool',
            'offset', 'inf', 'nan', 'le'}


def load():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def metric_names(expr):
    """Metric names a PromQL expression selects (same rules as tests/unit/test_prometheus_rules.py)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r'\{[^}]*\}', ' ', text)
    text = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', text)
    text = re.sub(r'\[[^\]]*\]', ' ', text)
    text = re.sub(r'\$\{?\w+\}?', ' ', text)
    names = set()
    for match in re.finditer(r'(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?', text):
        if match.group(2) or match.group(1).lower() in KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def exported_names():
    """Every sample name the stand-in backend's /metrics serves."""
    from korrigo_stack import backend

    return backend.exported_sample_names()


def exprs(dashboard):
    """(where, expr) of every query: panel targets, template variables, annotations."""
    out = []
    for panel in dashboard['panels']:
        for target in panel.get('targets', []):
            out.append((panel['title'], target['expr']))
    for variable in dashboard['templating']['list']:
        if variable['type'] == 'query':
            query = variable['query']['query'] if isinstance(variable['query'], dict) else variable['query']
            match = re.match(r'^label_values\((.*),\s*\w+\)$', query)
            out.append(('variable ' + variable['name'], match.group(1) if match else query))
    for annotation in dashboard['annotations']['list']:
        if annotation.get('expr'):
            out.append(('annotation ' + annotation['name'], annotation['expr']))
    return out


def test_the_playbooks_eight_panels_in_order():
    panels = load()['panels']
    assert len(panels) == 8
    for panel, title in zip(panels, PLAYBOOK_PANELS):
        assert panel['title'].startswith(title), (panel['title'], title)
    assert len(set(p['id'] for p in panels)) == 8
    for panel in panels:
        if panel['type'] == 'text':
            assert 'not exported' in panel['title'] and panel['options']['content']
        else:
            assert panel['targets'] and all(t['expr'].strip() for t in panel['targets'])
            assert panel['datasource']['uid'] == '${datasource}'


def test_breakdowns_the_playbook_asks_for():
    by_title = dict((p['title'], p) for p in load()['panels'])

    def joined(prefix):
        return ' '.join(t['expr'] for title, p in by_title.items() if title.startswith(prefix) for t in p['targets'])

    assert 'pages_bucket' in joined('Import Duration') and 'retry_attempt' in joined('Finalize Duration')
    for quantile in ('0.5', '0.95', '0.99'):
        assert 'histogram_quantile(%s,' % quantile in joined('Import Duration')
    assert 'by (error_type)' in joined('OCR Errors') and '* 60' in joined('OCR Errors')
    assert 'by (conflict_type)' in joined('Lock Conflicts') and '* 60' in joined('Lock Conflicts')
    latency = joined('HTTP Request Latency')
    assert 'sum by (le)' in latency and 'histogram_quantile(0.99,' in latency


def test_every_query_uses_exported_metric_names():
    exported = exported_names() | PROMETHEUS_OWN
    assert {'grading_copies_by_status', 'http_request_duration_seconds_bucket',
            'grading_lock_conflicts_total'} <= exported
    seen = set()
    for where, expr in exprs(load()):
        names = metric_names(expr)
        assert names, (where, expr)
        assert names <= exported, (where, names - exported)
        seen |= names
    # every Korrigo metric family of the schema facts is on the dashboard
    for family in ('http_request_duration_seconds', 'grading_import_duration_seconds',
                   'grading_finalize_duration_seconds', 'grading_ocr_errors_total', 'grading_lock_conflicts_total',
                   'grading_copies_by_status'):
        assert any(name.startswith(family) for name in seen), family


@pytest.mark.skipif(PROMTOOL is None, reason='promtool not installed (Debian package prometheus)')
def test_every_query_is_valid_promql(tmp_path):
    rules = []
    for index, (_where, expr) in enumerate(exprs(load())):
        concrete = expr.replace('$__rate_interval', '5m').replace('$school', '.*')
        rules.append({'record': 'korrigo:dashboard_query_%d' % index, 'expr': concrete})
    path = tmp_path / 'dashboard.rules.yml'
    path.write_text(yaml.safe_dump({'groups': [{'name': 'dashboard', 'rules': rules}]}))
    proc = subprocess.run([PROMTOOL, 'check', 'rules', str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
