# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documented in validate_inputs.yml next to this file.
#
# Every role checks ALL its inputs with this filter in its first task file (tasks/validate.yml), before it gathers a
# fact or changes a row, so that a run with one bad input changes nothing at all: no remediation may commit and then
# find a malformed value further down. The filter never raises on a bad value; it returns one problem per input,
# each naming the input, so the role fails once with every problem listed.

import math
import uuid

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

# ansible-core >= 2.19 hands filters lazy/tagged containers; plain Mapping/Sequence checks cover both.
from ansible.module_utils.six.moves.collections_abc import Mapping, Sequence

MAX_REASON = 500
MAX_TEXT = 1000
UUID_EXAMPLE = '3f2b8c1e-0d4a-4f6e-9b1a-2c3d4e5f6a7b'

# The collection-wide inventory variables (roles/common/defaults/main.yml): every role checks them the same way, so
# its validate.yml only passes their values. A role's own rules override these.
COMMON_RULES = {
    'korrigo_db_host': {'type': 'text', 'required': True, 'max_length': 255},
    'korrigo_db_port': {'type': 'int', 'min': 1, 'max': 65535},
    'korrigo_db_name': {'type': 'text', 'required': True, 'max_length': 63},
    'korrigo_db_user': {'type': 'text', 'required': True, 'max_length': 63},
    'korrigo_remediation_user': {'type': 'text', 'required': True, 'max_length': 150},
    'korrigo_max_changes': {'type': 'int', 'min': 1},
    'korrigo_lock_timeout_ms': {'type': 'int', 'min': 1},
    'korrigo_statement_timeout_ms': {'type': 'int', 'min': 1},
    'korrigo_media_root': {'type': 'path', 'required': True},
    'korrigo_report_dir': {'type': 'path'},
    'korrigo_log_file': {'type': 'path'},
    'korrigo_broker_url': {'type': 'url', 'schemes': ['redis', 'rediss']},
    'korrigo_worker_broker_url': {'type': 'url', 'schemes': ['redis', 'rediss']},
    'korrigo_metrics_url': {'type': 'url', 'schemes': ['http', 'https']},
    'korrigo_worker_manager': {'type': 'enum', 'choices': ['compose', 'systemd', 'none']},
    'korrigo_compose_project': {'type': 'text', 'max_length': 255},
    'korrigo_systemd_unit': {'type': 'text', 'max_length': 255},
}

KINDS = ('uuid_list', 'id_list', 'reason', 'int', 'number', 'bool', 'path', 'url', 'enum', 'enum_list', 'text')


def _is_text(value):
    return isinstance(value, string_types)


def _is_list(value):
    return isinstance(value, Sequence) and not _is_text(value) and not isinstance(value, bytes)


def _show(value, limit=60):
    text = repr(value) if not _is_text(value) else "'%s'" % value
    text = text.replace('\x00', '\\x00')
    return text if len(text) <= limit else text[:limit] + '...'


def _int(value):
    """An int from an int or a decimal string; None when it is neither (True/False and 1.5 are not ints)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value == int(value) else None
    if _is_text(value):
        text = value.strip()
        if text.lstrip('+-').isdigit():
            return int(text)
    return None


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif _is_text(value):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _bounds(name, number, rule):
    problems = []
    if 'min' in rule and number < rule['min']:
        wanted = 'positive' if rule['min'] == 1 and rule['type'] == 'int' else '>= %s' % rule['min']
        problems.append('%s must be %s (got %s)' % (name, wanted, number))
    if 'min_exclusive' in rule and number <= rule['min_exclusive']:
        problems.append('%s must be greater than %s (got %s)' % (name, rule['min_exclusive'], number))
    if 'max' in rule and number > rule['max']:
        problems.append('%s must be at most %s (got %s)' % (name, rule['max'], number))
    return problems


def _check_text(name, value, rule):
    if value is None or value == '':
        return ['%s is required' % name] if rule.get('required') else []
    if not _is_text(value):
        return ['%s must be a string (got %s)' % (name, _show(value))]
    problems = []
    if '\x00' in value:
        problems.append('%s contains a NUL character' % name)
    if rule.get('required') and not value.strip():
        problems.append('%s is required (got only whitespace)' % name)
    limit = rule.get('max_length', MAX_TEXT)
    if len(value) > limit:
        problems.append('%s is %d characters long, at most %d allowed' % (name, len(value), limit))
    return problems


def _check_uuid_list(name, value, rule):
    if value is None or value == '':
        return []
    if _is_text(value):  # -e name=a,b: split as Ansible's list type does for the module (commas, nothing stripped)
        value = value.split(',')
    if not _is_list(value):
        return ['%s must be a list of UUIDs (got %s)' % (name, _show(value))]
    bad = []
    for item in value:
        try:
            if not _is_text(item) or '\x00' in item:
                raise ValueError(item)
            uuid.UUID(item)  # exactly what the module's validate_uuids accepts: no stripping here either
        except (TypeError, ValueError, AttributeError):
            bad.append(_show(item))
    if bad:
        return ['%s: malformed UUID %s (expected e.g. %s)' % (name, ', '.join(bad[:10]) + (
            ' and %d more' % (len(bad) - 10) if len(bad) > 10 else ''), UUID_EXAMPLE)]
    if 'max_items' in rule and len(value) > rule['max_items']:
        return ['%s lists %d ids, at most %d allowed' % (name, len(value), rule['max_items'])]
    return []


def _check_id_list(name, value, rule):
    """Copy ids or anonymous ids: a list, or one string separated by commas or spaces (as_id_list)."""
    if _is_text(value):
        value = [item for item in value.replace(',', ' ').split() if item]
    if value is None:
        value = []
    if not _is_list(value):
        return ['%s must be a list of ids (got %s)' % (name, _show(value))]
    problems = []
    if rule.get('required') and not value:
        problems.append('%s is required (at least one id)' % name)
    limit = rule.get('max_length', 100)
    bad = [_show(item) for item in value
           if not _is_text(item) or not item.strip() or '\x00' in item or len(item) > limit]
    if bad:
        problems.append('%s: invalid id %s (at most %d characters, no NUL)' % (name, ', '.join(bad[:10]), limit))
    return problems


def _check_reason(name, value, rule):
    required = rule.get('required')
    if value is None or (_is_text(value) and not value.strip()):
        if required:
            return ['%s is required%s' % (name, (' ' + rule['required_because']) if rule.get('required_because')
                                          else '')]
        return []
    return _check_text(name, value, dict(rule, max_length=rule.get('max_length', MAX_REASON)))


def _check_int(name, value, rule):
    number = _int(value)
    if number is None:
        return ['%s must be a whole number (got %s)' % (name, _show(value))]
    return _bounds(name, number, rule)


def _check_number(name, value, rule):
    number = _number(value)
    if number is None:
        return ['%s must be a finite number (got %s)' % (name, _show(value))]
    return _bounds(name, number, rule)


def _check_bool(name, value, rule):
    if isinstance(value, bool):
        return []
    if _is_text(value) and value.strip().lower() in ('true', 'false', 'yes', 'no', 'on', 'off', '1', '0', 'y', 'n'):
        return []
    if isinstance(value, int) and value in (0, 1):
        return []
    return ['%s must be a boolean (got %s)' % (name, _show(value))]


def _check_path(name, value, rule):
    if value is None or value == '':
        return ['%s is required (an absolute path)' % name] if rule.get('required') else []
    if not _is_text(value):
        return ['%s must be a path (got %s)' % (name, _show(value))]
    problems = []
    if '\x00' in value:
        problems.append('%s contains a NUL character' % name)
    if not value.startswith('/'):
        problems.append('%s must be an absolute path%s (got %s)' % (
            name, '' if rule.get('required') else ' or empty', _show(value)))
    if len(value) > 4096:
        problems.append('%s is longer than 4096 characters' % name)
    return problems


def _check_url(name, value, rule):
    schemes = rule.get('schemes', ['http', 'https'])
    expected = ' or '.join('%s://' % s for s in schemes)
    if value is None or value == '':
        return ['%s is required (%s...)' % (name, expected)] if rule.get('required') else []
    if not _is_text(value):
        return ['%s must be a URL (got %s)' % (name, _show(value))]
    scheme, sep, rest = value.partition('://')
    problems = []
    if not sep or scheme.lower() not in schemes:
        problems.append('%s must start with %s (got %s)' % (name, expected, _show(value)))
    elif not rest.split('/', 1)[0].rsplit('@', 1)[-1]:
        problems.append('%s has no host (got %s)' % (name, _show(value)))
    if any(ch in value for ch in '\x00\r\n \t'):
        problems.append('%s contains whitespace or a control character' % name)
    return problems


def _check_enum(name, value, rule):
    choices = list(rule.get('choices') or [])
    if value in choices:
        return []
    return ['%s must be one of %s (got %s)' % (name, ', '.join(str(c) for c in choices), _show(value))]


def _check_enum_list(name, value, rule):
    if not _is_list(value):
        return ['%s must be a list (got %s)' % (name, _show(value))]
    choices = list(rule.get('choices') or [])
    bad = [_show(item) for item in value if item not in choices]
    problems = []
    if bad:
        problems.append('%s: %s not among %s' % (name, ', '.join(bad), ', '.join(str(c) for c in choices)))
    if rule.get('required') and not value:
        problems.append('%s must not be empty' % name)
    return problems


CHECKS = {
    'uuid_list': _check_uuid_list, 'id_list': _check_id_list, 'reason': _check_reason, 'int': _check_int, 'number': _check_number,
    'bool': _check_bool, 'path': _check_path, 'url': _check_url, 'enum': _check_enum,
    'enum_list': _check_enum_list, 'text': _check_text,
}


def _rule(name, rules):
    rule = rules.get(name, COMMON_RULES.get(name))
    if rule is None:
        raise AnsibleFilterError("validate_inputs: no rule for input '%s' (give one in the rules argument)" % name)
    if _is_text(rule):
        rule = {'type': rule}
    if not isinstance(rule, Mapping) or rule.get('type') not in KINDS:
        raise AnsibleFilterError("validate_inputs: the rule of '%s' must have a type among %s (got %r)"
                                 % (name, ', '.join(KINDS), rule))
    return dict(rule)


def validate_inputs(inputs, rules=None):
    """Every problem of ``inputs`` (name -> value), one sentence each naming the input; [] when all are valid.

    ``rules`` maps a name to a kind (``'int'``) or a dict (``{'type': 'int', 'min': 0}``); the collection-wide
    korrigo_* inventory variables have rules of their own (COMMON_RULES)."""
    if not isinstance(inputs, Mapping):
        raise AnsibleFilterError('validate_inputs expects a dictionary of input names and values')
    rules = dict(rules or {})
    if not isinstance(rules, Mapping):
        raise AnsibleFilterError('validate_inputs: rules must be a dictionary')
    problems = []
    for name in inputs:
        rule = _rule(name, rules)
        value = inputs[name]
        if rule.get('when_set') and value in (None, ''):
            continue
        problems.extend(CHECKS[rule['type']](name, value, rule))
    return problems


class FilterModule(object):
    def filters(self):
        return {'validate_inputs': validate_inputs}
