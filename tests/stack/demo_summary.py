"""Five-second summary of a `make demo` run: the JSON reports of korrigo_report_dir, about ten lines.

Usage: demo_summary.py REPORT_DIR

Reads every `<scenario>-<host>.json` the roles wrote (keys severity, status, title, done, needs_human,
check_mode) and prints the overall severity (triage's, else the highest), one line per scenario, what was
fixed, what needs a human and where the reports are. Exits 1 when the directory holds no report.
"""
import glob
import json
import os
import sys

# The severity order has one home, the collection's (make puts .cache/collections on PYTHONPATH).
from ansible_collections.korrigo.ops.plugins.module_utils.severity import SEVERITIES, worst

WIDTH = 110


def rank(severity):
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def shorten(text, width):
    text = ' '.join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + '...'


def load(report_dir):
    reports = []
    # One report per scenario and host: its -latest.json (every run also keeps a time-stamped copy, and the older
    # <scenario>-<host>.json name); fleet summaries are not scenario reports.
    paths = sorted(p for p in glob.glob(os.path.join(report_dir, '*-latest.json'))
                   if not os.path.basename(p).startswith('fleet-'))
    if not paths:
        paths = sorted(p for p in glob.glob(os.path.join(report_dir, '*.json'))
                       if not os.path.basename(p).startswith('fleet-'))
    for path in paths:
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError) as error:
            data = {'status': 'unreadable report (%s)' % error}
        if not isinstance(data, dict):
            data = {'status': 'unreadable report (not an object)'}
        data.setdefault('scenario', os.path.basename(path)[:-len('.json')])
        data['_file'] = os.path.basename(path)
        stem = data['_file'][:-len('.json')]
        if stem.endswith('-latest'):
            stem = stem[:-len('-latest')]
        data['_host'] = stem[len(data['scenario']) + 1:] if stem.startswith(data['scenario'] + '-') else ''
        reports.append(data)
    if len(set(r['_host'] for r in reports)) > 1:  # several inventory hosts: name each line's host
        for report in reports:
            report['scenario'] = '%s@%s' % (report['scenario'], report['_host'] or '?')
    # triage first (it decides the incident's severity), then by severity, then by name
    reports.sort(key=lambda r: (not r['scenario'].startswith('triage'), rank(r.get('severity')),
                                r['scenario']))
    return reports


def items(report, key):
    value = report.get(key) or []
    return [value] if isinstance(value, str) else [str(line) for line in value]


def overall_severity(reports):
    for report in reports:
        if report['scenario'].startswith('triage') and report.get('severity'):
            return report['severity'], 'triage'
    highest = worst(r.get('severity') for r in reports)
    if highest:
        return highest, 'highest of the reports'
    return 'none', 'no report gives one'


def first_and_more(lines, width):
    if not lines:
        return '-'
    more = ' (+%d more)' % (len(lines) - 1) if len(lines) > 1 else ''
    return shorten(lines[0], width - len(more)) + more


def summary(report_dir):
    reports = load(report_dir)
    if not reports:
        return ['no report in %s: did the playbook run with korrigo_report_dir set?' % report_dir], 1
    severity, source = overall_severity(reports)
    check = any(r.get('check_mode') for r in reports)
    mode = ', CHECK MODE: nothing was changed' if check else ''
    out = ['== Korrigo demo: severity %s (%s)%s' % (severity, source, mode)]
    name_width = max(len(r['scenario']) for r in reports)
    for report in reports:
        out.append('  %s  %-4s  %-16s  fixed %2d   needs a human %2d' % (
            report['scenario'].ljust(name_width), report.get('severity') or '-',
            shorten(report.get('status') or '?', 16), len(items(report, 'done')), len(items(report, 'needs_human'))))
    label = 16
    fixed = [r for r in reports if items(r, 'done')]
    human = [r for r in reports if items(r, 'needs_human')]
    out.append('%-*s%s' % (label, 'Fixed:', '' if fixed else 'nothing'))
    for report in fixed:
        out[-1] += first_and_more(['%s: %s' % (report['scenario'], line) for line in items(report, 'done')],
                                  WIDTH - label)
        out.append(' ' * label)
    if fixed:
        out.pop()
    out.append('%-*s%s' % (label, 'Needs a human:', '' if human else 'nothing'))
    for report in human:
        out[-1] += first_and_more(['%s: %s' % (report['scenario'], line) for line in items(report, 'needs_human')],
                                  WIDTH - label)
        out.append(' ' * label)
    if human:
        out.pop()
    out.append('%-*s%s/ (%d JSON files: %s)' % (label, 'Reports:', report_dir.rstrip('/'), len(reports),
                                                ', '.join(r['_file'] for r in reports)))
    return out, 0


def main(argv):
    if len(argv) != 2 or argv[1] in ('-h', '--help'):
        sys.stderr.write(__doc__)
        return 2
    lines, code = summary(argv[1])
    print('\n'.join(lines))
    return code


if __name__ == '__main__':
    sys.exit(main(sys.argv))
