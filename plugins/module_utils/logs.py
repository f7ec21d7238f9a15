# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Korrigo's log file (backend/logs/django.log): its last lines, read in bounded memory, and the errors and
requests of a window (korrigo_log_facts, and triage's korrigo_triage_info)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

# korrigo_log_facts' options; korrigo_triage_info takes their defaults.
LOG_ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True),
    window_minutes=dict(type='int', default=60),
    levels=dict(type='list', elements='str', default=['ERROR', 'CRITICAL']),
    slow_request_ms=dict(type='int', default=5000),
    max_bytes=dict(type='int', default=52428800),
    list_limit=dict(type='int', default=20),
)


def read_tail(path, max_bytes):
    """The complete lines in the last ``max_bytes`` of ``path`` (a rotating log can be large)."""
    size = os.path.getsize(path)
    with open(path, 'rb') as handle:
        if size > max_bytes:
            handle.seek(size - max_bytes)
            handle.readline()  # a partial line
        return handle.read().decode('utf-8', 'replace').splitlines()


def lines_naming(path, needles, limit, max_bytes):
    """The last ``limit`` lines of the log that contain one of ``needles`` (copy id, anonymous id), or why none
    could be read: {'path', 'readable', 'lines', 'error'}."""
    if not path:
        return {'path': None, 'readable': False, 'lines': [], 'error': 'no log file given (korrigo_log_file)'}
    needles = [n for n in needles if n]
    try:
        lines = read_tail(path, max_bytes)
    except (IOError, OSError) as err:
        return {'path': path, 'readable': False, 'lines': [], 'error': str(err)}
    named = [line for line in lines if any(n in line for n in needles)]
    return {'path': path, 'readable': True, 'lines': named[-limit:] if limit else [], 'matched': len(named)}


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


def log_facts(params):
    """ansible_facts.korrigo_log from korrigo_log_facts' parameters (LOG_ARGUMENT_SPEC)."""
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
        return facts
    try:
        lines = read_tail(params['path'], params['max_bytes'])
    except (IOError, OSError) as err:
        raise KorrigoError("cannot read Korrigo's log %s: %s" % (params['path'], err))
    facts['exists'] = True
    facts.update(summarize(lines, now, params))
    return facts
