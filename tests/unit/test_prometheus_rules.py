"""monitoring/prometheus: the shipped alert rules pass `promtool check rules` and their `promtool test rules` unit
tests, carry the labels and annotations the rulebook and the on-call need, use only metrics the stack exports, and
every alert has its rule in extensions/eda/rulebooks/korrigo_alerts.yml running the annotated remediation."""
import glob
import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, 'monitoring', 'prometheus', 'rules', 'korrigo.rules.yml')
TESTS = sorted(glob.glob(os.path.join(ROOT, 'monitoring', 'prometheus', 'tests', '*.test.yml')))
RULEBOOK = os.path.join(ROOT, 'extensions', 'eda', 'rulebooks', 'korrigo_alerts.yml')
PROMTOOL = shutil.which('promtool')
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason='promtool not installed (Debian package prometheus)')

APPENDIX_C = {'ImportStuck', 'FinalizationFailureHigh', 'LockConflictsHigh', 'HighLatency'}
SCENARIO_ALERTS = {'WorkerDown', 'BacklogGrowing'}
SEVERITIES = {'P0', 'P1', 'P2', 'P3'}

PROMQL_KEYWORDS = {
    'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset',
    'inf', 'nan', 'le',
}


def load_rules():
    with open(RULES) as handle:
        return [rule for group in yaml.safe_load(handle)['groups'] for rule in group['rules']]


def metric_names(expr):
    """Metric names a PromQL expression selects (strings, label matchers, grouping clauses, ranges, functions and
    keywords removed). Grafana's $variables are dropped."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r'\{[^}]*\}', ' ', text)
    text = re.sub(r'\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', text)
    text = re.sub(r'\[[^\]]*\]', ' ', text)
    text = re.sub(r'\$\{?\w+\}?', ' ', text)
    names = set()
    for match in re.finditer(r'(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?', text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS or re.match(r'^\d', name):
            continue
        names.add(name)
    return names


def exported_names():
    """Every sample name the stand-in backend's /metrics serves, plus Prometheus' own `up`."""
    from korrigo_stack import backend

    return backend.exported_sample_names() | {'up'}


def test_metric_name_extraction():
    assert metric_names('histogram_quantile(0.95, sum by (school, le) (rate(x_bucket{path!~"/a|b"}[5m]))) > 5') == {
        'x_bucket'}
    assert metric_names('a{s="1"} > 10 unless on (school) sum by (school) (increase(b_count[15m])) > 0') == {'a', 'b_count'}
    assert metric_names('sum(rate(c_total{school=~"$school"}[$__rate_interval])) * 60') == {'c_total'}


@needs_promtool
def test_promtool_check_rules():
    proc = subprocess.run([PROMTOOL, 'check', 'rules', RULES], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS: %d rules found' % len(load_rules()) in proc.stdout


@needs_promtool
@pytest.mark.parametrize('test_file', TESTS, ids=os.path.basename)
def test_promtool_test_rules(test_file):
    proc = subprocess.run([PROMTOOL, 'test', 'rules', os.path.basename(test_file)], cwd=os.path.dirname(test_file),
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS' in proc.stdout


def test_every_alert_has_a_unit_test():
    tested = set()
    for test_file in TESTS:
        with open(test_file) as handle:
            spec = yaml.safe_load(handle)
        if not any(f.endswith('korrigo.rules.yml') for f in spec['rule_files']):
            continue
        for case in spec['tests']:
            for check in case.get('alert_rule_test', []):
                if check.get('exp_alerts'):
                    tested.add(check['alertname'])
    assert tested == set(rule['alert'] for rule in load_rules())


def test_appendix_c_and_scenario_alerts_are_shipped():
    names = [rule['alert'] for rule in load_rules()]
    assert len(names) == len(set(names))
    assert APPENDIX_C | SCENARIO_ALERTS <= set(names)


def github_anchor(heading):
    slug = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return slug.replace(' ', '-')


@pytest.mark.parametrize('rule', load_rules(), ids=lambda rule: rule['alert'])
def test_rule_labels_and_annotations(rule):
    labels, annotations = rule['labels'], rule['annotations']
    assert labels['severity'] in SEVERITIES
    scenario = labels['scenario']
    assert os.path.isdir(os.path.join(ROOT, 'roles', scenario)), scenario
    assert set(annotations) >= {'summary', 'description', 'runbook_url', 'remediation'}
    for playbook in remediations(rule):
        assert os.path.isfile(os.path.join(ROOT, 'playbooks', playbook + '.yml')), playbook
    url, _sep, anchor = annotations['runbook_url'].partition('#')
    assert url.endswith('/docs/runbook-corrections.md')
    with open(os.path.join(ROOT, 'docs', 'runbook-corrections.md')) as handle:
        anchors = set(github_anchor(line[3:]) for line in handle if line.startswith('## '))
    assert anchor in anchors
    assert '$labels.school' in annotations['summary']
    assert re.match(r'^\d+[smh]$', rule['for'])


def remediations(rule):
    """korrigo.ops.<playbook> names of the remediation annotation (comma separated when several run in order)."""
    out = []
    for item in rule['annotations']['remediation'].split(','):
        namespace, _sep, playbook = item.strip().rpartition('.')
        assert namespace == 'korrigo.ops', item
        out.append(playbook)
    return out


@pytest.mark.parametrize('rule', load_rules(), ids=lambda rule: rule['alert'])
def test_rules_keep_the_school_label(rule):
    """The rulebook runs the remediation on the alert's `school`: an aggregation must keep it."""
    for clause in re.findall(r'\b(?:by|on)\s*\(([^)]*)\)', rule['expr']):
        assert 'school' in [label.strip() for label in clause.split(',')], rule['expr']
    assert not re.search(r'\b(sum|max|min|avg|count)\s*\(', rule['expr']), 'aggregation without by (school)'


def test_rules_use_only_exported_metrics():
    exported = exported_names()
    for rule in load_rules():
        missing = metric_names(rule['expr']) - exported
        assert not missing, (rule['alert'], missing)


def _rulebook_rules():
    with open(RULEBOOK) as handle:
        rulesets = yaml.safe_load(handle)
    return [rule for ruleset in rulesets for rule in ruleset['rules']]


def test_rulebook_runs_the_remediation_of_every_alert():
    by_alert = {}
    for rule in _rulebook_rules():
        match = re.search(r'labels\.alertname\s*==\s*"(\w+)"', str(rule['condition']))
        if match:
            by_alert[match.group(1)] = rule
    for alert in load_rules():
        rule = by_alert.get(alert['alert'])
        assert rule is not None, 'no rulebook rule for %s' % alert['alert']
        condition = str(rule['condition'])
        assert 'status == "firing"' in condition
        actions = rule.get('actions') or [rule['action']]
        names = [action['run_playbook']['name'] for action in actions]
        assert names == ['korrigo.ops.' + p for p in remediations(alert)], (alert['alert'], names)
        throttle = rule['throttle']
        assert throttle['once_within'] == '10 minutes'
        assert throttle['group_by_attributes'] == ['event.alert.labels.alertname', 'event.alert.labels.school']
        for action in actions:
            run = action['run_playbook']
            assert run['lock'].startswith('{{ event.alert.labels.school }}/')
            assert run['extra_vars']['korrigo_alert']['school'] == '{{ event.alert.labels.school }}'
