"""The report documents (JSON), Markdown and HTML renderings, and the fleet summary."""
import html.parser
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter import report as filters

LOCKS_REPORT = {
    'scenario': 'lock_conflicts', 'title': 'Lock conflicts (incident playbook, scenario 3)', 'korrigo_version': 'head',
    'check_mode': False, 'severity': 'P3', 'status': 'resolved',
    'found': ['7 locks: 2 active, 5 expired'],
    'done': ['release_lock IMPORT-1 (lock of prof.martin): LOCKED -> READY'],
    'needs_human': ['active locks held over 60 min: <IMPORT-9> & co'],
    'details': {
        'before': {'total': 7, 'expired_total': 5, 'expired_by_owner': {'prof.martin': 5}, 'ids': ['x']},
        'after': {'total': 2, 'expired_total': 0, 'expired_by_owner': {}},
        'actions': [{'kind': 'release_lock', 'anonymous_id': 'IMPORT-1', 'copy_id': 'c1', 'owner': 'prof.martin',
                     'before': {'status': 'LOCKED'}, 'after': {'status': 'READY'}},
                    {'kind': 'release_lock', 'anonymous_id': 'IMPORT-2', 'copy_id': 'c2',
                     'before': {'status': 'LOCKED'}, 'after': {'status': 'READY'}}],
    },
}


def document(**extra):
    return filters.report_document(LOCKS_REPORT, host='school-a', started='2026-12-01T22:44:50Z',
                                   finished='2026-12-01T22:44:55Z', versions={'ansible-core': '2.19.0'}, **extra)


def test_document_keeps_the_report_and_adds_run_versions_facts_actions():
    doc = document(files={'json': '/r/lock_conflicts-school-a-20261201T224450Z.json'})
    for key in ('scenario', 'severity', 'status', 'found', 'done', 'needs_human', 'details'):
        assert doc[key] == LOCKS_REPORT[key]
    assert doc['schema'] == 'korrigo.ops/report/v1' and doc['host'] == 'school-a'
    assert doc['run'] == {'id': 'lock_conflicts-school-a-20261201T224450Z', 'started': '2026-12-01T22:44:50Z',
                          'finished': '2026-12-01T22:44:55Z', 'duration_seconds': 5.0}
    assert doc['versions']['korrigo'] == 'head' and doc['versions']['ansible-core'] == '2.19.0'
    assert doc['versions']['korrigo.ops']  # read from galaxy.yml (source) or MANIFEST.json (installed)
    assert doc['facts_before']['expired_total'] == 5 and doc['facts_after']['expired_total'] == 0
    assert doc['actions']['count'] == 2 and doc['actions']['by_kind'] == {'release_lock': 2}
    assert doc['actions']['copy_ids'] == ['c1', 'c2'] and doc['actions']['anonymous_ids'] == ['IMPORT-1', 'IMPORT-2']
    assert doc['actions']['items'][0]['status_before'] == 'LOCKED'
    assert {'cause': 'expired_total', 'count': 5} in doc['causes']
    assert doc['human']['count'] == 1 and doc['files']['json'].endswith('.json')
    json.dumps(doc)  # plain JSON types only


def test_document_without_start_time_has_no_duration_and_other_details_shapes():
    report = dict(LOCKS_REPORT, details={'queued': [{'copy_id': 'c9'}], 'notes': [
        {'kind': 'note_gap', 'anonymous_id': 'A-1', 'gap': 'missing_import'}],
        'flagged': [{'anonymous_id': 'A-7', 'copy_id': 'c7', 'verdict': 'corrupted'}],
        'findings': [{'kind': 'lock_contention', 'text': '3 sessions wait'}],
        'verdict': {'reasons': {'P1': ['error rate 12 %'], 'P2': []}}})
    doc = filters.report_document(report, host='h')
    assert doc['run']['duration_seconds'] is None and doc['run']['finished']
    kinds = [a['kind'] for a in doc['actions']['items']]
    assert kinds == ['note_gap', 'refinalize_queued']
    assert doc['human']['copies'] == [{'anonymous_id': 'A-7', 'copy_id': 'c7', 'why': 'corrupted'}]
    causes = [c['cause'] for c in doc['causes']]
    assert causes == ['P1', 'lock_contention', 'pdf_corrupted']


def test_markdown_has_severity_table_sections_and_copies():
    text = filters.report_markdown(document())
    assert text.startswith('# lock_conflicts: Lock conflicts')
    assert '| severity | **P3** |' in text
    assert '| expired_total | 5 | 0 |' in text and '| expired_by_owner.prof.martin | 5 |  |' in text
    assert '## Done (1)' in text and '## Needs a human (1)' in text and '## Found (1)' in text
    assert '| IMPORT-1 | release_lock | LOCKED -> READY | c1 |' in text
    assert 'CHECK MODE' not in text
    assert 'CHECK MODE' in filters.report_markdown(dict(LOCKS_REPORT, check_mode=True))


def test_markdown_escapes_table_pipes():
    text = filters.report_markdown(dict(LOCKS_REPORT, status='a | b'))
    assert '| status | a \\| b |' in text


class Collector(html.parser.HTMLParser):
    def __init__(self):
        html.parser.HTMLParser.__init__(self)
        self.tags, self.text, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        for name in ('src', 'href'):
            if attrs.get(name):
                self.external.append(attrs[name])

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_and_escaped():
    page = filters.report_html(document())
    parsed = Collector()
    parsed.feed(page)
    assert page.startswith('<!DOCTYPE html>') and 'style' in parsed.tags
    assert parsed.external == [] and 'script' not in parsed.tags and '@import' not in page and 'url(' not in page
    text = ''.join(parsed.text)
    assert '<IMPORT-9> & co' in text  # shown as text ...
    assert '&lt;IMPORT-9&gt; &amp; co' in page  # ... because it was escaped
    assert 'id="severity"' in page and '>P3</span>' in page
    for figure in ('IMPORT-1', 'IMPORT-2', 'c1', 'school-a', 'expired_total'):
        assert figure in text
    assert 'id="done-count">1<' in page and 'id="human-count">1<' in page


def test_html_marks_check_mode_and_colours_each_severity():
    assert 'CHECK MODE' in filters.report_html(dict(LOCKS_REPORT, check_mode=True))
    colours = set()
    for severity in ('P0', 'P1', 'P2', 'P3', 'none'):
        page = filters.report_html(dict(LOCKS_REPORT, severity=severity))
        colours.add(page.split('class="badge severity" id="severity" style="background:', 1)[1][:7])
    assert len(colours) == 5


def test_renderers_refuse_what_is_not_a_report():
    for render in (filters.report_document, filters.report_markdown, filters.report_html):
        with pytest.raises(AnsibleFilterError):
            render({'found': []})
    with pytest.raises(AnsibleFilterError):
        filters.fleet_summary('school-a')
    with pytest.raises(AnsibleFilterError):
        filters.fleet_markdown({})


def test_fleet_summary_has_one_row_per_school_with_failures_and_missing_reports():
    healthy = dict(LOCKS_REPORT, severity='none', status='healthy', done=[], needs_human=[])
    hosts = [
        {'inventory_hostname': 'school-a', 'korrigo_run_reports': {'lock_conflicts': document()}},
        {'inventory_hostname': 'school-b', 'korrigo_school': 'Lycee B',
         'korrigo_run_report': {'summaries': {'lock_conflicts': healthy, 'triage': dict(healthy, scenario='triage')}}},
        {'inventory_hostname': 'school-c', 'korrigo_run_failure': {
            'scenario': 'lock_conflicts', 'task': 'Gather lock facts', 'msg': 'connection refused'}},
        {'inventory_hostname': 'school-d'},
    ]
    summary = filters.fleet_summary(hosts, 'lock_conflicts', '2026-12-01T23:00:00Z')
    assert summary['schools'] == 4 and summary['stamp'] == '20261201T230000Z'
    assert [(r['host'], r['scenario']) for r in summary['rows']] == [
        ('school-a', 'lock_conflicts'), ('school-b', 'lock_conflicts'), ('school-c', 'lock_conflicts'),
        ('school-d', 'lock_conflicts')]
    assert summary['worst_severity'] == 'P3' and summary['failed'] == ['school-c', 'school-d']
    assert summary['needing_human'] == ['school-a', 'school-c', 'school-d']
    assert summary['rows'][0]['done_count'] == 1 and summary['rows'][1]['school'] == 'Lycee B'
    everything = filters.fleet_summary(hosts, 'site')
    assert [(r['host'], r['scenario']) for r in everything['rows']][1:3] == [
        ('school-b', 'lock_conflicts'), ('school-b', 'triage')]
    text = filters.fleet_markdown(summary)
    assert '4 schools, worst severity P3, 2 failed, 3 need a human' in text
    assert '| school-a | lock_conflicts | P3 | resolved | 1 |' in text
    assert '| Lycee B | lock_conflicts | none | healthy | 0 | - |' in text
    assert 'FAILED: connection refused' in text and 'at "Gather lock facts"' in text
    json.dumps(summary)
