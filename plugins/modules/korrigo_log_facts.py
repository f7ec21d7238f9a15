#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: korrigo_log_facts
short_description: Recent errors of Korrigo's JSON log, grouped by signature, and the request error rate
version_added: 0.2.0
description:
  - Reads the end of Korrigo's C(django.log) (JSON lines with C(timestamp), C(level), C(logger), C(message) and,
    for requests, C(request_id), C(path), C(status_code), C(duration_ms)) and sets C(ansible_facts.korrigo_log).
  - Errors (O(levels)) of the last O(window_minutes) are grouped by signature - level, logger and the message with
    UUIDs, hexadecimal ids and numbers replaced by placeholders, plus the exception's class when there is one -
    with their count, first and last time and one sample message.
  - Requests of the window (log lines with a C(status_code), counted once per C(request_id)) give the share of
    5xx answers (the playbook's P1 rule is an error rate over 10 %) and the number of slow ones.
  - Read-only. A missing log file is reported (C(exists=false)), not a failure.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  path:
    description:
      - Korrigo's JSON log on the managed host (C(backend/logs/django.log) of the deployment).
    type: path
    required: true
  window_minutes:
    description:
      - Only entries of the last this many minutes count. Timestamps are UTC, as Korrigo writes them.
    type: int
    default: 60
  levels:
    description:
      - Levels counted as errors.
    type: list
    elements: str
    default: [ ERROR, CRITICAL ]
  slow_request_ms:
    description:
      - A request whose C(duration_ms) exceeds this is counted as slow.
    type: int
    default: 5000
  max_bytes:
    description:
      - Bytes read from the end of the file (a rotating log can be large; older lines are outside any window anyway).
    type: int
    default: 52428800
  list_limit:
    description:
      - Most signatures listed, most frequent first.
    type: int
    default: 20
extends_documentation_fragment:
  - korrigo.ops.korrigo.attributes_read_only
seealso:
  - module: korrigo.ops.korrigo_latency_facts
'''

EXAMPLES = r'''
- name: Errors of the last 30 minutes
  korrigo.ops.korrigo_log_facts:
    path: /opt/korrigo/backend/logs/django.log
    window_minutes: 30

- name: Show the most frequent error
  ansible.builtin.debug:
    var: ansible_facts.korrigo_log.signatures[0]
'''

RETURN = r'''
ansible_facts:
  description: Facts under the C(korrigo_log) key.
  returned: always
  type: dict
  contains:
    korrigo_log:
      description: The log's recent errors and requests.
      type: dict
      returned: always
      sample:
        exists: true
        window_minutes: 60
        errors_total: 4
        signatures:
          - {signature: "ERROR grading.services: PDF generation failed for copy <uuid> (attempt <n>)",
             level: ERROR, logger: grading.services, count: 3, first_seen: "2026-11-30 00:41:02,118",
             last_seen: "2026-11-30 00:52:40,007", sample: "PDF generation failed for copy 0b8f... (attempt 3)"}
        requests: {total: 412, errors_5xx: 3, error_rate: 0.0073, slow: 2}
'''

import datetime
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.logs import read_tail

UUID_RE = re.compile(r'[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}')
HEX_RE = re.compile(r'\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b')
NUM_RE = re.compile(r'\d+(\.\d+)?')
TIME_FORMATS = ('%Y-%m-%d %H:%M:%S,%f', '%Y-%m-%dT%H:%M:%S.%f', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%d %H:%M:%S')


def parse_time(text):
    text = str(text or '').strip().replace('Z', '')
    if len(text) > 6 and text[-6] in '+-' and text[-3] == ':':
        text = text[:-6]  # an explicit UTC offset; Korrigo logs UTC
    for fmt in TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def normalize(message):
    first = (message or '').splitlines()[0] if message else ''
    return NUM_RE.sub('<n>', HEX_RE.sub('<hex>', UUID_RE.sub('<uuid>', first)))[:200]


def exception_class(exc_info):
    lines = [line for line in str(exc_info or '').splitlines() if line.strip()]
    if not lines:
        return None
    return lines[-1].split(':', 1)[0].strip()[:100]


def summarize(lines, now, params):
    since = now - datetime.timedelta(minutes=params['window_minutes'])
    levels = set(level.upper() for level in params['levels'])
    signatures, requests = {}, {}
    parse_errors = in_window = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            stamp = parse_time(entry.get('timestamp'))
        except (ValueError, AttributeError):
            parse_errors += 1
            continue
        if not isinstance(entry, dict) or stamp is None:
            parse_errors += 1
            continue
        if stamp < since or stamp > now + datetime.timedelta(minutes=5):
            continue
        in_window += 1
        if entry.get('status_code') is not None:
            key = entry.get('request_id') or ('line', in_window)
            known = requests.setdefault(key, {'status': 0, 'duration_ms': 0.0})
            try:
                known['status'] = max(known['status'], int(entry['status_code']))
                known['duration_ms'] = max(known['duration_ms'], float(entry.get('duration_ms') or 0))
            except (TypeError, ValueError):
                pass
        level = str(entry.get('level', '')).upper()
        if level not in levels:
            continue
        logger = entry.get('logger') or ''
        exc = exception_class(entry.get('exc_info'))
        signature = '%s %s: %s%s' % (level, logger, normalize(entry.get('message')), ' [%s]' % exc if exc else '')
        found = signatures.setdefault(signature, {
            'signature': signature, 'level': level, 'logger': logger, 'exception': exc, 'count': 0,
            'first_seen': entry.get('timestamp'), 'sample': str(entry.get('message') or '')[:300],
            'paths': []})
        found['count'] += 1
        found['last_seen'] = entry.get('timestamp')
        if entry.get('path') and entry['path'] not in found['paths'] and len(found['paths']) < 5:
            found['paths'].append(entry['path'])
    ranked = sorted(signatures.values(), key=lambda s: (-s['count'], s['signature']))
    total = len(requests)
    errors_5xx = sum(1 for r in requests.values() if r['status'] >= 500)
    return {
        'entries_in_window': in_window,
        'parse_errors': parse_errors,
        'errors_total': sum(s['count'] for s in ranked),
        'signatures_total': len(ranked),
        'signatures': ranked[:params['list_limit']],
        'requests': {
            'total': total,
            'errors_5xx': errors_5xx,
            'error_rate': round(float(errors_5xx) / total, 4) if total else 0.0,
            'slow': sum(1 for r in requests.values() if r['duration_ms'] > params['slow_request_ms']),
            'slow_request_ms': params['slow_request_ms'],
        },
    }


def gather_facts(params):
    for name in ('window_minutes', 'max_bytes', 'list_limit', 'slow_request_ms'):
        if params[name] < 0:
            raise KorrigoError("%s must not be negative (got %d)" % (name, params[name]))
    now = datetime.datetime.utcnow()
    facts = {'path': params['path'], 'window_minutes': params['window_minutes'],
             'until': now.strftime('%Y-%m-%d %H:%M:%S'),
             'since': (now - datetime.timedelta(minutes=params['window_minutes'])).strftime('%Y-%m-%d %H:%M:%S')}
    if not os.path.isfile(params['path']):
        facts.update(exists=False, errors_total=0, signatures=[], signatures_total=0,
                     requests={'total': 0, 'errors_5xx': 0, 'error_rate': 0.0, 'slow': 0})
        return {'changed': False, 'ansible_facts': {'korrigo_log': facts}}
    try:
        lines = read_tail(params['path'], params['max_bytes'])
    except (IOError, OSError) as err:
        raise KorrigoError("cannot read Korrigo's log %s: %s" % (params['path'], err))
    facts['exists'] = True
    facts.update(summarize(lines, now, params))
    return {'changed': False, 'ansible_facts': {'korrigo_log': facts}}


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type='path', required=True),
        window_minutes=dict(type='int', default=60),
        levels=dict(type='list', elements='str', default=['ERROR', 'CRITICAL']),
        slow_request_ms=dict(type='int', default=5000),
        max_bytes=dict(type='int', default=52428800),
        list_limit=dict(type='int', default=20),
    ), supports_check_mode=True)
    run_module(module, lambda: gather_facts(module.params))


if __name__ == '__main__':
    main()
