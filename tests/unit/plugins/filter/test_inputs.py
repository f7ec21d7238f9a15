"""filter/inputs.py (validate_inputs): every problem of a role's inputs, each naming the input."""
import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.inputs import COMMON_RULES, validate_inputs

UUID = '3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLES = ('lock_conflicts', 'finalization_failing', 'import_stuck', 'high_latency', 'audit_events', 'triage',
         'copy_dossier')


def test_valid_inputs_have_no_problem():
    assert validate_inputs({
        'korrigo_max_changes': 100, 'korrigo_lock_timeout_ms': '5000', 'korrigo_media_root': '/opt/korrigo/media',
        'korrigo_report_dir': '', 'korrigo_broker_url': 'rediss://:secret@redis:6380/0',
        'korrigo_metrics_url': 'https://korrigo.example/metrics', 'korrigo_worker_manager': 'none',
        'ids': [UUID, UUID.upper()], 'csv': '%s,%s' % (UUID, UUID), 'reason': 'ticket 42',
        'ratio': 0.5, 'flag': 'yes', 'statuses': ['READY'],
    }, {'ids': 'uuid_list', 'csv': 'uuid_list', 'reason': {'type': 'reason', 'required': True},
        'ratio': {'type': 'number', 'min': 0, 'max': 1}, 'flag': 'bool',
        'statuses': {'type': 'enum_list', 'choices': ['READY', 'LOCKED']}}) == []


@pytest.mark.parametrize('name,value,rule,expected', [
    ('ids', [UUID, 'not-a-uuid'], 'uuid_list', "ids: malformed UUID 'not-a-uuid'"),
    ('ids', "'; DROP TABLE exams_copy; --", 'uuid_list', 'ids: malformed UUID'),
    ('ids', {'a': 1}, 'uuid_list', 'ids must be a list of UUIDs'),
    ('ids', [' %s' % UUID], 'uuid_list', 'ids: malformed UUID'),
    ('ids', '%s, %s' % (UUID, UUID), 'uuid_list', 'ids: malformed UUID'),
    ('reason', '   ', {'type': 'reason', 'required': True, 'required_because': 'with ids'}, 'reason is required with ids'),
    ('reason', 'x' * 501, 'reason', 'reason is 501 characters long, at most 500'),
    ('reason', 'a\x00b', 'reason', 'reason contains a NUL character'),
    ('korrigo_max_changes', 0, None, 'korrigo_max_changes must be positive (got 0)'),
    ('korrigo_max_changes', 'lots', None, "korrigo_max_changes must be a whole number (got 'lots')"),
    ('korrigo_max_changes', True, None, 'korrigo_max_changes must be a whole number'),
    ('korrigo_max_changes', 1.5, None, 'korrigo_max_changes must be a whole number'),
    ('korrigo_lock_timeout_ms', -1, None, 'korrigo_lock_timeout_ms must be positive'),
    ('threshold', float('nan'), {'type': 'number', 'min': 0}, 'threshold must be a finite number'),
    ('threshold', 'inf', {'type': 'number', 'min': 0}, 'threshold must be a finite number'),
    ('threshold', -0.5, {'type': 'number', 'min': 0}, 'threshold must be >= 0 (got -0.5)'),
    ('ratio', 2, {'type': 'number', 'max': 1}, 'ratio must be at most 1'),
    ('korrigo_media_root', 'media', None, "korrigo_media_root must be an absolute path (got 'media')"),
    ('korrigo_media_root', '', None, 'korrigo_media_root is required'),
    ('korrigo_report_dir', 'reports', None, 'korrigo_report_dir must be an absolute path or empty'),
    ('korrigo_report_dir', '/tmp/a\x00b', None, 'korrigo_report_dir contains a NUL character'),
    ('korrigo_broker_url', 'http://redis:6379/0', None, 'korrigo_broker_url must start with redis:// or rediss://'),
    ('korrigo_broker_url', 'redis://', None, 'korrigo_broker_url has no host'),
    ('korrigo_metrics_url', 'ftp://host/metrics', None, 'korrigo_metrics_url must start with http:// or https://'),
    ('korrigo_metrics_url', 'http://host/metrics\r\nX-Injected: 1', None, 'korrigo_metrics_url contains whitespace'),
    ('korrigo_worker_manager', 'kubernetes', None, 'korrigo_worker_manager must be one of compose, systemd, none'),
    ('statuses', ['READY', 'GRADED'], {'type': 'enum_list', 'choices': ['READY']}, "statuses: 'GRADED' not among READY"),
    ('flag', 'maybe', 'bool', "flag must be a boolean (got 'maybe')"),
    ('korrigo_db_host', '', None, 'korrigo_db_host is required'),
    ('copies', [], {'type': 'id_list', 'required': True}, 'copies is required'),
])
def test_each_problem_names_its_input(name, value, rule, expected):
    problems = validate_inputs({name: value}, {name: rule} if rule else None)
    assert len(problems) >= 1 and problems[0].startswith(expected), problems
    assert all(p.startswith(name) for p in problems)


def test_every_problem_is_listed_at_once():
    problems = validate_inputs({'korrigo_max_changes': 0, 'korrigo_report_dir': 'rel', 'ids': ['x'],
                                'korrigo_broker_url': 'amqp://rabbit'}, {'ids': 'uuid_list'})
    names = [p.split()[0].rstrip(':') for p in problems]
    assert names == ['korrigo_max_changes', 'korrigo_report_dir', 'ids', 'korrigo_broker_url']


def test_a_password_in_a_broker_url_is_never_shown():
    problems = validate_inputs({'korrigo_broker_url': 'redis://:s3cret@host:6379/0'})
    assert problems == []


def test_an_input_without_rule_is_an_error_of_the_role():
    with pytest.raises(AnsibleFilterError, match="no rule for input 'mystery'"):
        validate_inputs({'mystery': 1})
    with pytest.raises(AnsibleFilterError, match='must have a type'):
        validate_inputs({'x': 1}, {'x': 'float'})
    with pytest.raises(AnsibleFilterError):
        validate_inputs(['not', 'a', 'dict'])


def test_when_set_skips_empty_values():
    assert validate_inputs({'x': ''}, {'x': {'type': 'int', 'min': 1, 'when_set': True}}) == []


@pytest.mark.parametrize('role', ROLES)
def test_each_role_validates_first_and_covers_its_documented_inputs(role):
    """validate.yml is imported before diagnose, and every input it checks is in meta/argument_specs.yml
    (and the other way round for the role's own options)."""
    with open(os.path.join(ROOT, 'roles', role, 'tasks', 'main.yml')) as handle:
        block = yaml.safe_load(handle)[0]['block']
    assert block[0]['ansible.builtin.import_tasks'] == 'validate.yml'
    with open(os.path.join(ROOT, 'roles', role, 'tasks', 'validate.yml')) as handle:
        text = handle.read()
    with open(os.path.join(ROOT, 'roles', role, 'meta', 'argument_specs.yml')) as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    checked = set(name for name in options if "'%s':" % name in text)
    own = set(name for name in options if not name.startswith('korrigo_') and 'password' not in name)
    assert own <= checked, sorted(own - checked)
    documented_common = set(name for name in options if name.startswith('korrigo_') and name in COMMON_RULES)
    missing = set(n for n in documented_common if "'%s':" % n not in text) - {'korrigo_db_password'}
    assert not missing, sorted(missing)
