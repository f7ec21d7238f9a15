# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The filters' documentation lives next to this file, one YAML file per filter
# (report_text.yml, describe_action.yml): a DOCUMENTATION block here would document only one of them.

import datetime
import html
import json
import os
import re

from ansible.errors import AnsibleFilterError

from ansible.module_utils.six.moves.collections_abc import Mapping

from ansible_collections.korrigo.ops.plugins.module_utils.severity import worst

SECTIONS = (('found', 'Found'), ('done', 'Done'), ('needs_human', 'Needs a human'))


def report_text(report):
    """Lines of the report; a list so Ansible's debug output keeps one line per entry."""
    if not isinstance(report, dict) or 'scenario' not in report:
        raise AnsibleFilterError("report_text expects a korrigo.ops report dictionary with a 'scenario' key")
    mode = ' [CHECK MODE: nothing was changed]' if report.get('check_mode') else ''
    status = 'status: %s | severity: %s | korrigo: %s' % (
        report.get('status', 'unknown'), report.get('severity', 'n/a'), report.get('korrigo_version', 'unknown'))
    lines = ['%s: %s%s' % (report['scenario'], report.get('title', ''), mode), status]
    for key, heading in SECTIONS:
        entries = report.get(key) or []
        lines.append('%s (%d):' % (heading, len(entries)))
        lines.extend('  - %s' % entry for entry in entries)
        if not entries:
            lines.append('  - nothing')
    return lines


def describe_action(action):
    """One line for one entry of a module's `actions` list."""
    if not isinstance(action, dict):
        raise AnsibleFilterError("describe_action expects an action dictionary from a korrigo.ops module")
    before = action.get('before') or {}
    after = action.get('after') or {}
    text = '%s %s' % (action.get('kind', 'change'), action.get('anonymous_id') or action.get('copy_id')
                      or 'pid %s' % action.get('pid'))
    if action.get('pid') and action.get('reason'):
        text += ' (%s, %s, %s)' % (action.get('usename'), action.get('application_name'), action['reason'])
    if action.get('gap'):
        text += ' (%s)' % action['gap']
    if action.get('owner'):
        text += ' (lock of %s)' % action['owner']
    if before.get('status') and before.get('status') != after.get('status'):
        text += ': %s -> %s' % (before['status'], after.get('status'))
    return text


# --- Report documents: JSON, Markdown, HTML (one per host and run), and the fleet summary -----------------------

DOCUMENT_SCHEMA = 'korrigo.ops/report/v1'
SEVERITY_COLORS = {'P0': ('#7f1d1d', '#ffffff'), 'P1': ('#b91c1c', '#ffffff'), 'P2': ('#c2410c', '#ffffff'),
                   'P3': ('#a16207', '#ffffff'), 'none': ('#15803d', '#ffffff')}
# details keys holding what a run changed, and those holding copies left for a person.
ACTION_KEYS = ('actions', 'notes', 'queued')
HUMAN_COPY_KEYS = ('flagged', 'gaps')
TIME_FORMAT = '%Y-%m-%dT%H:%M:%SZ'


def collection_version():
    """This collection's version: MANIFEST.json of an installed copy, else galaxy.yml of a source checkout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(root, 'MANIFEST.json')) as handle:
            return json.load(handle)['collection_info']['version']
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(root, 'galaxy.yml')) as handle:
            found = re.search(r'^version:\s*["\']?([^"\'\s]+)', handle.read(), re.M)
            return found.group(1) if found else None
    except OSError:
        return None


def _require_report(report, name):
    if not isinstance(report, Mapping) or 'scenario' not in report:
        raise AnsibleFilterError("%s expects a korrigo.ops report dictionary with a 'scenario' key" % name)


def _parse_time(value):
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    text = str(value).strip().replace('Z', '+00:00')
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.datetime.strptime(str(value).strip(), '%Y%m%dT%H%M%SZ')
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT) if moment else None


def _stamp(moment):
    return moment.astimezone(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')


def _plain(value):
    """Ansible's lazy containers and tagged values as plain JSON types."""
    if isinstance(value, Mapping):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def _normalize_action(entry, source):
    entry = entry if isinstance(entry, Mapping) else {'kind': source, 'copy_id': entry}
    before, after = entry.get('before') or {}, entry.get('after') or {}
    action = {'kind': entry.get('kind') or {'queued': 'refinalize_queued', 'notes': 'note'}.get(source, 'change'),
              'anonymous_id': entry.get('anonymous_id'), 'copy_id': entry.get('copy_id')}
    if entry.get('pid') is not None:
        action['pid'] = entry.get('pid')
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        action['status_before'] = before.get('status')
        action['status_after'] = after.get('status')
    action['description'] = describe_action(dict(entry, kind=action['kind']))
    return action


def _actions(details):
    actions = []
    for key in ACTION_KEYS:
        for entry in details.get(key) or []:
            actions.append(_normalize_action(entry, key))
    return actions


def _copies_for_human(details):
    copies = []
    for key in HUMAN_COPY_KEYS:
        for entry in details.get(key) or []:
            if isinstance(entry, Mapping) and (entry.get('anonymous_id') or entry.get('copy_id')):
                copies.append({'anonymous_id': entry.get('anonymous_id'), 'copy_id': entry.get('copy_id'),
                               'why': entry.get('verdict') or entry.get('kind') or entry.get('rule') or key})
    return copies


def _causes(report, details):
    """Root causes as data: the role's own `causes`, else what its details name (by cause, reasons, findings)."""
    if report.get('causes'):
        return _plain(report['causes'])
    causes = []
    before = details.get('before') if isinstance(details.get('before'), Mapping) else {}
    for name in ('expired_total', 'locked_without_valid_lock', 'stuck_total', 'failed_total', 'in_progress_stale'):
        if isinstance(before.get(name), int) and before[name] > 0:
            causes.append({'cause': name, 'count': before[name]})
    for name, count in (before.get('by_cause') or {}).items():
        if count:
            causes.append({'cause': name, 'count': count})
    verdict = details.get('verdict') if isinstance(details.get('verdict'), Mapping) else {}
    for name, reasons in (verdict.get('reasons') or {}).items():
        if reasons:
            causes.append({'cause': name, 'evidence': _plain(reasons)})
    for finding in details.get('findings') or []:
        if isinstance(finding, Mapping):
            causes.append({'cause': finding.get('kind'), 'evidence': finding.get('text')})
    for name, count in (details.get('gap_counts') or {}).items():
        if count:
            causes.append({'cause': name, 'count': count})
    for entry in details.get('flagged') or []:
        if isinstance(entry, Mapping) and entry.get('verdict'):
            causes.append({'cause': 'pdf_' + str(entry['verdict']), 'copy': entry.get('anonymous_id')})
    return causes


def report_files_of(directory, scenario, host, moment):
    """Where a run's report files go: <dir>/<scenario>-<host>-<UTC time>.json/.md/.html, and the latest JSON."""
    base = '%s/%s-%s' % (str(directory).rstrip('/') or '/', scenario, host)
    stamp = _stamp(moment)
    return {'json': '%s-%s.json' % (base, stamp), 'markdown': '%s-%s.md' % (base, stamp),
            'html': '%s-%s.html' % (base, stamp), 'latest': base + '-latest.json'}


def report_document(report, host=None, started=None, finished=None, versions=None, files=None, report_dir=None):
    """The machine-readable report of one host and run: the role's report plus host, timings, versions, facts
    before and after, causes, actions (counts and copy ids) and what needs a human, as plain JSON types.
    With ``report_dir`` (and no ``files``) the files are named after the run's start (report_files_of)."""
    _require_report(report, 'report_document')
    document = _plain(report)
    details = document.get('details') if isinstance(document.get('details'), dict) else {}
    finished_at = _parse_time(finished) or datetime.datetime.now(datetime.timezone.utc)
    started_at = _parse_time(started)
    actions = _actions(details)
    by_kind = {}
    for action in actions:
        by_kind[action['kind']] = by_kind.get(action['kind'], 0) + 1
    facts_before = details.get('before', details.get('facts'))
    document.update(
        schema=DOCUMENT_SCHEMA,
        host=None if host is None else str(host),
        run={'id': '%s-%s-%s' % (document['scenario'], host, _stamp(started_at or finished_at)),
             'started': _iso(started_at), 'finished': _iso(finished_at),
             'duration_seconds': (round((finished_at - started_at).total_seconds(), 3) if started_at else None)},
        versions=dict((k, v) for k, v in dict(
            {'korrigo': document.get('korrigo_version'), 'korrigo.ops': collection_version()},
            **_plain(versions or {})).items() if v not in (None, '')),
        facts_before=facts_before,
        facts_after=details.get('after'),
        causes=_causes(document, details),
        actions={'count': len(actions), 'by_kind': by_kind,
                 'copy_ids': [a['copy_id'] for a in actions if a.get('copy_id')],
                 'anonymous_ids': [a['anonymous_id'] for a in actions if a.get('anonymous_id')],
                 'items': actions},
        human={'count': len(document.get('needs_human') or []), 'items': document.get('needs_human') or [],
               'copies': _copies_for_human(details)},
    )
    if not files and report_dir:
        files = report_files_of(report_dir, document['scenario'], host, started_at or finished_at)
    if files:
        document['files'] = _plain(files)
    return document


def _document(report, name):
    _require_report(report, name)
    return report if report.get('schema') == DOCUMENT_SCHEMA else report_document(report)


def _scalar(value):
    return value is None or isinstance(value, (bool, int, float, str))


def before_after_rows(document):
    """(name, before, after) for every scalar fact, one level of nesting flattened (`locks.expired_total`)."""
    before, after = document.get('facts_before'), document.get('facts_after')
    before = before if isinstance(before, Mapping) else {}
    after = after if isinstance(after, Mapping) else {}

    def flat(facts):
        out = {}
        for key, value in facts.items():
            if _scalar(value):
                out[key] = value
            elif isinstance(value, Mapping):
                for sub, inner in value.items():
                    if _scalar(inner):
                        out['%s.%s' % (key, sub)] = inner
        return out
    flat_before, flat_after = flat(before), flat(after)
    names = list(flat_before) + [k for k in flat_after if k not in flat_before]
    return [(name, flat_before.get(name, ''), flat_after.get(name, '')) for name in names]


def _text(value):
    if value is None or value == '':
        return ''
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return str(value)


def _md(value):
    return _text(value).replace('|', '\\|').replace('\n', ' ')


def report_markdown(report):
    """The report as Markdown: heading, severity, before/after table, what was done, what needs a human, copies."""
    doc = _document(report, 'report_markdown')
    run, versions = doc.get('run') or {}, doc.get('versions') or {}
    lines = ['# %s: %s' % (doc['scenario'], _text(doc.get('title'))), '']
    if doc.get('check_mode'):
        lines += ['> **CHECK MODE**: nothing was changed; the counts are what a real run would do.', '']
    lines += ['| | |', '|---|---|',
              '| host | %s |' % _md(doc.get('host')),
              '| severity | **%s** |' % _md(doc.get('severity', 'n/a')),
              '| status | %s |' % _md(doc.get('status', 'unknown')),
              '| korrigo version | %s |' % _md(doc.get('korrigo_version', 'unknown')),
              '| run | %s (started %s, finished %s, %s s) |' % (
                  _md(run.get('id')), _md(run.get('started')), _md(run.get('finished')),
                  _md(run.get('duration_seconds'))),
              '| versions | %s |' % _md(', '.join('%s %s' % (k, v) for k, v in sorted(versions.items()))), '']
    rows = before_after_rows(doc)
    if rows:
        lines += ['## Before / after', '', '| fact | before | after |', '|---|---:|---:|']
        lines += ['| %s | %s | %s |' % (_md(n), _md(b), _md(a)) for n, b, a in rows]
        lines.append('')
    for key, heading in SECTIONS:
        entries = doc.get(key) or []
        lines += ['## %s (%d)' % (heading, len(entries)), '']
        lines += ['- %s' % _text(entry).replace('\n', ' ') for entry in entries] or ['- nothing']
        lines.append('')
    actions = (doc.get('actions') or {}).get('items') or []
    copies = (doc.get('human') or {}).get('copies') or []
    if actions:
        lines += ['## Copies changed (%d)' % len(actions), '', '| anonymous id | action | status | copy id |',
                  '|---|---|---|---|']
        lines += ['| %s | %s | %s | %s |' % (
            _md(a.get('anonymous_id') or ('pid %s' % a['pid'] if a.get('pid') else '')), _md(a.get('kind')),
            _md(' -> '.join(x for x in (_text(a.get('status_before')), _text(a.get('status_after'))) if x)),
            _md(a.get('copy_id'))) for a in actions]
        lines.append('')
    if copies:
        lines += ['## Copies for a person (%d)' % len(copies), '', '| anonymous id | why | copy id |',
                  '|---|---|---|']
        lines += ['| %s | %s | %s |' % (_md(c.get('anonymous_id')), _md(c.get('why')), _md(c.get('copy_id')))
                  for c in copies]
        lines.append('')
    return '\n'.join(lines)


HTML_STYLE = """
body{font-family:DejaVu Sans,Arial,Helvetica,sans-serif;margin:0;background:#f3f4f6;color:#111827}
main{max-width:1100px;margin:0 auto;padding:24px}
header{background:#fff;border-radius:8px;padding:20px 24px;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:24px;margin:0 0 8px}h2{font-size:18px;margin:0 0 12px}
.badge{display:inline-block;font-weight:bold;font-size:22px;padding:6px 16px;border-radius:6px;margin-right:12px}
.status{font-size:18px;vertical-align:middle}
.check{background:#fef3c7;border:2px solid #d97706;color:#78350f;padding:8px 12px;border-radius:6px;margin:12px 0;
font-weight:bold}
.meta{color:#4b5563;font-size:13px;margin-top:10px}
section{background:#fff;border-radius:8px;padding:16px 24px;margin-top:16px;box-shadow:0 1px 3px rgba(0,0,0,.15)}
section.human{border-left:8px solid #b91c1c}section.done{border-left:8px solid #15803d}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.changed td{background:#ecfdf5;font-weight:bold}
code,.id{font-family:DejaVu Sans Mono,monospace;font-size:13px}
ul{margin:0;padding-left:20px}li{margin:3px 0}
.count{display:inline-block;background:#111827;color:#fff;border-radius:12px;padding:0 10px;font-size:14px;
margin-left:6px}
.nothing{color:#6b7280;font-style:italic}
"""


def _h(value):
    return html.escape(_text(value), quote=True)


def _badge(severity):
    background, color = SEVERITY_COLORS.get(str(severity), ('#374151', '#ffffff'))
    return '<span class="badge severity" id="severity" style="background:%s;color:%s">%s</span>' % (
        background, color, _h(severity))


def _html_list(entries, cls):
    if not entries:
        return '<p class="nothing">nothing</p>'
    return '<ul class="%s">%s</ul>' % (cls, ''.join('<li>%s</li>' % _h(entry) for entry in entries))


def report_html(report):
    """The report as one self-contained HTML page (inline CSS, no script, no external asset)."""
    doc = _document(report, 'report_html')
    run, versions = doc.get('run') or {}, doc.get('versions') or {}
    actions = (doc.get('actions') or {}).get('items') or []
    copies = (doc.get('human') or {}).get('copies') or []
    title = '%s on %s: %s' % (doc['scenario'], doc.get('host') or 'unknown host', doc.get('severity', 'n/a'))
    out = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>%s</title>' % _h(title), '<style>%s</style></head><body><main>' % HTML_STYLE,
           '<header><h1>%s</h1>' % _h(doc.get('title') or doc['scenario']),
           '<div>%s<span class="status" id="status">%s</span></div>' % (
               _badge(doc.get('severity', 'n/a')), _h(doc.get('status', 'unknown')))]
    if doc.get('check_mode'):
        out.append('<div class="check">CHECK MODE: nothing was changed; the counts are what a real run would '
                   'do.</div>')
    out.append('<div class="meta">host <b id="host">%s</b> &middot; scenario <b>%s</b> &middot; Korrigo %s &middot; '
               'run %s &middot; started %s &middot; finished %s &middot; %s s<br>%s</div></header>' % (
                   _h(doc.get('host')), _h(doc['scenario']), _h(doc.get('korrigo_version', 'unknown')),
                   _h(run.get('id')), _h(run.get('started')), _h(run.get('finished')),
                   _h(run.get('duration_seconds')),
                   _h(', '.join('%s %s' % (k, v) for k, v in sorted(versions.items())))))
    out.append('<section class="human"><h2>Needs a human<span class="count" id="human-count">%d</span></h2>%s' % (
        len(doc.get('needs_human') or []), _html_list(doc.get('needs_human'), 'needs-human')))
    if copies:
        out.append('<table id="human-copies"><thead><tr><th>anonymous id</th><th>why</th><th>copy id</th></tr>'
                   '</thead><tbody>')
        out.extend('<tr><td class="id">%s</td><td>%s</td><td class="id">%s</td></tr>' % (
            _h(c.get('anonymous_id')), _h(c.get('why')), _h(c.get('copy_id'))) for c in copies)
        out.append('</tbody></table>')
    out.append('</section>')
    out.append('<section class="done"><h2>What was done<span class="count" id="done-count">%d</span></h2>%s'
               % (len(doc.get('done') or []), _html_list(doc.get('done'), 'done')))
    if actions:
        out.append('<table id="copies"><thead><tr><th>anonymous id</th><th>action</th><th>status</th>'
                   '<th>copy id</th></tr></thead><tbody>')
        for action in actions:
            label = action.get('anonymous_id') or ('pid %s' % action['pid'] if action.get('pid') else '')
            status = ' &rarr; '.join(_h(x) for x in (action.get('status_before'), action.get('status_after')) if x)
            out.append('<tr><td class="id">%s</td><td>%s</td><td>%s</td><td class="id">%s</td></tr>' % (
                _h(label), _h(action.get('kind')), status, _h(action.get('copy_id'))))
        out.append('</tbody></table>')
    out.append('</section>')
    rows = before_after_rows(doc)
    out.append('<section class="facts"><h2>Before / after</h2>')
    if rows:
        out.append('<table id="before-after"><thead><tr><th>fact</th><th>before</th><th>after</th></tr></thead>'
                   '<tbody>')
        for name, before, after in rows:
            changed = ' class="changed"' if _text(before) != _text(after) and after != '' else ''
            out.append('<tr%s><td><code>%s</code></td><td class="num">%s</td><td class="num">%s</td></tr>' % (
                changed, _h(name), _h(before), _h(after)))
        out.append('</tbody></table>')
    else:
        out.append('<p class="nothing">no facts recorded</p>')
    out.append('</section>')
    out.append('<section class="found"><h2>Found<span class="count">%d</span></h2>%s</section>' % (
        len(doc.get('found') or []), _html_list(doc.get('found'), 'found')))
    out.append('</main></body></html>')
    return '\n'.join(out) + '\n'


def _get(mapping, key, default=None):
    try:
        value = mapping[key]
    except (KeyError, TypeError, AttributeError):
        return default
    return default if value is None else value


def _worst(severities):
    return worst(severities) or ('none' if severities else 'n/a')


# What a fleet row reads of a report document (the run_report action remembers only these in its summaries).
FLEET_ROW_KEYS = ('scenario', 'title', 'severity', 'status', 'korrigo_version', 'check_mode', 'done', 'needs_human',
                  'files')


def fleet_row_source(document):
    """The part of a report document a fleet summary row is made of."""
    return dict((key, document.get(key)) for key in FLEET_ROW_KEYS)


def fleet_summary(hosts, scenario='all', generated=None):
    """One row per school (host) and scenario from the hosts' report summaries and korrigo_run_failure.

    ``hosts`` is a list of host variable mappings (``ansible_play_hosts_all | map('extract', hostvars)``) or of
    plain dictionaries with ``inventory_hostname``, ``korrigo_run_report`` (the last run_report result, whose
    ``summaries`` has every report of the host) or ``korrigo_run_reports`` (summaries by scenario), and
    ``korrigo_run_failure``."""
    if not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError('fleet_summary expects a list of host variables')
    generated_at = _parse_time(generated) or datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for hostvars in hosts:
        name = str(_get(hostvars, 'inventory_hostname', '?'))
        reports = dict(_plain(_get(hostvars, 'korrigo_run_reports', None)) or {})
        reports.update((_plain(_get(hostvars, 'korrigo_run_report', None)) or {}).get('summaries') or {})
        failure = _plain(_get(hostvars, 'korrigo_run_failure', None))
        school = _get(hostvars, 'korrigo_school', None)
        selected = [r for key, r in sorted(reports.items()) if scenario in ('all', 'site', key)]
        failure_row = None
        for doc in selected:
            row = {'host': name, 'school': _plain(school) if school else name, 'scenario': doc.get('scenario'),
                   'severity': doc.get('severity', 'n/a'), 'status': doc.get('status', 'unknown'),
                   'korrigo_version': doc.get('korrigo_version'), 'check_mode': bool(doc.get('check_mode')),
                   'done': doc.get('done') or [], 'done_count': len(doc.get('done') or []),
                   'needs_human': list(doc.get('needs_human') or []), 'failed': None,
                   'report': (doc.get('files') or {}).get('json')}
            if failure and failure.get('scenario') == doc.get('scenario'):
                failure_row = row
            rows.append(row)
        if failure and failure_row is None:
            failure_row = {'host': name, 'school': _plain(school) if school else name,
                           'scenario': failure.get('scenario') or scenario, 'severity': 'n/a', 'status': 'failed',
                           'korrigo_version': None, 'check_mode': False, 'done': [], 'done_count': 0,
                           'needs_human': [], 'failed': None, 'report': None}
            rows.append(failure_row)
        if failure_row is not None:
            failure_row['failed'] = failure.get('msg') or 'failed'
            failure_row['needs_human'].append('the run failed on this school%s: %s' % (
                ' at "%s"' % failure['task'] if failure.get('task') else '', failure_row['failed']))
        if not selected and not failure:
            rows.append({'host': name, 'school': _plain(school) if school else name, 'scenario': scenario,
                         'severity': 'n/a', 'status': 'no report', 'korrigo_version': None, 'check_mode': False,
                         'done': [], 'done_count': 0, 'failed': 'no report',
                         'needs_human': ['no report: the host was unreachable or did not run'], 'report': None})
    by_severity = {}
    for row in rows:
        by_severity[row['severity']] = by_severity.get(row['severity'], 0) + 1
    return {'schema': 'korrigo.ops/fleet/v1', 'scenario': scenario, 'generated': _iso(generated_at),
            'stamp': _stamp(generated_at), 'schools': len(set(r['host'] for r in rows)),
            'failed': sorted(set(r['host'] for r in rows if r['failed'])),
            'needing_human': sorted(set(r['host'] for r in rows if r['needs_human'])),
            'worst_severity': _worst([r['severity'] for r in rows if r['severity'] != 'n/a']),
            'by_severity': by_severity, 'rows': rows}


def fleet_markdown(summary):
    """The fleet summary as one Markdown table of all schools (also printed, one line per row)."""
    if not isinstance(summary, Mapping) or 'rows' not in summary:
        raise AnsibleFilterError('fleet_markdown expects the dictionary korrigo.ops.fleet_summary returns')
    lines = ['# Fleet summary: %s (%s)' % (summary.get('scenario'), summary.get('generated')), '',
             '%d schools, worst severity %s, %d failed, %d need a human' % (
                 summary.get('schools', 0), summary.get('worst_severity'), len(summary.get('failed') or []),
                 len(summary.get('needing_human') or [])), '',
             '| school | scenario | severity | status | done | needs a human |', '|---|---|---|---|---:|---|']
    for row in summary['rows']:
        human = '; '.join(_text(h) for h in row.get('needs_human') or []) or '-'
        status = _text(row.get('status'))
        if row.get('failed') and row['failed'] != 'no report':
            status = 'FAILED: %s' % row['failed']
        lines.append('| %s | %s | %s | %s | %d | %s |' % (
            _md(row.get('school')), _md(row.get('scenario')), _md(row.get('severity')), _md(status),
            row.get('done_count', 0), _md(human)))
    return '\n'.join(lines) + '\n'


class FilterModule(object):
    def filters(self):
        return {'report_text': report_text, 'describe_action': describe_action, 'report_document': report_document,
                'report_markdown': report_markdown, 'report_html': report_html, 'fleet_summary': fleet_summary,
                'fleet_markdown': fleet_markdown}
