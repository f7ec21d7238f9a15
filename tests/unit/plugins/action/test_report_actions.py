"""report_files' and run_report's action plugins: where the files are written, what run_report writes."""
import json
import types

import pytest

from ansible_collections.korrigo.ops.plugins.action.report_files import octal_mode, writes_on_controller
from ansible_collections.korrigo.ops.plugins.action.run_report import report_file_entries
from ansible_collections.korrigo.ops.plugins.filter.report import fleet_row_source, report_document


def _context(transport='local', become=False, async_val=0):
    return (types.SimpleNamespace(transport=transport), types.SimpleNamespace(become=become),
            types.SimpleNamespace(async_val=async_val))


@pytest.mark.parametrize('mode, expected', [('0640', 0o640), ('640', 0o640), (0o600, 0o600), ('u=rw,g=r', None),
                                            ('0999', None), (True, None)])
def test_only_plain_octal_modes_are_written_on_the_controller(mode, expected):
    assert octal_mode(mode) == expected


def test_files_are_written_here_only_on_a_local_connection_without_become():
    args = {'path': '/tmp/x', 'files': []}
    assert writes_on_controller(*_context(), args=args)
    assert not writes_on_controller(*_context(transport='ssh'), args=args)
    assert not writes_on_controller(*_context(become=True), args=args)
    assert not writes_on_controller(*_context(async_val=10), args=args)
    assert not writes_on_controller(*_context(), args=dict(args, mode='u=rw'))


def test_run_report_writes_this_runs_files_and_the_latest_ones():
    doc = report_document({'scenario': 'lock_conflicts', 'severity': 'P3', 'status': 'resolved', 'done': ['x']},
                          host='school-1', started='2026-12-02T03:15:00Z', report_dir='/var/reports')
    assert doc['files']['json'] == '/var/reports/lock_conflicts-school-1-20261202T031500Z.json'
    entries = report_file_entries(doc, 'school-1')
    names = [e['name'] for e in entries]
    assert names == ['lock_conflicts-school-1-20261202T031500Z.json', 'lock_conflicts-school-1-20261202T031500Z.md',
                     'lock_conflicts-school-1-20261202T031500Z.html']
    assert entries[0]['also_as'] == ['lock_conflicts-school-1-latest.json', 'lock_conflicts-school-1.json']
    assert json.loads(entries[0]['content'])['run']['id'] == 'lock_conflicts-school-1-20261202T031500Z'
    row = fleet_row_source(doc)
    assert row['severity'] == 'P3' and row['files']['json'].endswith('.json') and 'facts_before' not in row


def test_run_report_remembers_every_report_of_the_host_for_the_fleet_summary():
    from ansible_collections.korrigo.ops.plugins.action.run_report import ActionModule

    def run(report, summaries=None):
        task = types.SimpleNamespace(args={'report': report, 'host': 'school-1', 'stats': False,
                                           'summaries': summaries or {}},
                                     async_val=0, check_mode=False, diff=False)
        action = ActionModule(task, types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir='/tmp')), None, None, None, None)
        return action.run(task_vars={'inventory_hostname': 'school-1'})

    first = run({'scenario': 'triage', 'severity': 'P3', 'status': 'needs a human'})
    assert set(first['summaries']) == {'triage'} and first['summaries']['triage'] == first['summary']
    second = run({'scenario': 'lock_conflicts', 'severity': 'P3', 'status': 'resolved'}, first['summaries'])
    assert set(second['summaries']) == {'triage', 'lock_conflicts'} and not second.get('failed')
    again = run({'scenario': 'triage', 'severity': 'none', 'status': 'healthy'}, second['summaries'])
    assert again['summaries']['triage']['severity'] == 'none' and len(again['summaries']) == 2
