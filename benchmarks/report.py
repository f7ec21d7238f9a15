"""benchmarks/RESULTS.md from benchmarks/results.json: each measurement next to its floor and its target."""
import os


# Why a statement reads a table sequentially (RESULTS.md "Plans"): no index for the filter, or every row counted.
WHY = {
    'exams_copy': 'no index on status in either Korrigo version (copies in a status: the whole table)',
    ('korrigo_facts copies', 'exams_copy'): 'every copy is counted by status (a full read whatever the indexes)',
    ('korrigo_facts copy ids', 'exams_copy'):
        'no index on status: the one read that finds the copies each finding then reads by primary key',
    ('audit_trail report', 'exams_copy'): 'every copy is checked (a full read whatever the indexes)',
    ('audit_trail report, count_repeats', 'exams_copy'): 'every copy is checked (a full read whatever the indexes)',
    'grading_gradingevent': 'no index on action (indexes: copy_id, (copy_id, timestamp), actor_id)',
    ('audit_trail report', 'grading_gradingevent'):
        'no index on action: the IMPORT/VALIDATE/LOCK/FINALIZE events are counted per copy in one read',
    ('audit_trail report, count_repeats', 'grading_gradingevent'):
        'the trail events counted per copy, then every event grouped once (action, actor, copy)',
    'grading_copylock': 'every lock is counted (a full read of a small table)',
    'core_auditlog': 'a few rows: cheaper than its (resource_type, resource_id) index',
    'grading_annotation': 'no index on coordinates (out-of-bounds test)',
}


def _m(runs, name):
    row = (runs or {}).get(name)
    return row['median'] if row else None


def _fmt(value, digits=2):
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return ('%.' + str(digits) + 'f') % value
    return str(value)


def _row(cells):
    return '| ' + ' | '.join(_fmt(c) for c in cells) + ' |'


def _holds(ok):
    if ok is None:
        return 'not measured'
    return '**holds**' if ok else '**does not hold**'


def _spread(runs, name):
    row = (runs or {}).get(name)
    if not row:
        return 'n/a'
    return '%.3f / %.3f / %.3f (%d)' % (row['min'], row['median'], row['max'], row['runs'])


def read_path(part, out):
    runs = part.get('runs', {})
    n = part.get('n', {})
    out.append('## Read path at district scale')
    out.append('')
    out.append('%s copies, %s grading events, %s locks (%.1f GB); `%s`.' % (
        n.get('copies'), n.get('events'), n.get('locks'), (n.get('database_bytes') or 0) / 1e9, part.get('command')))
    out.append('')
    out.append('| measurement | min / median / max (runs), s | floor | floor median, s | median / floor | target |')
    out.append('|---|---|---|---|---|---|')
    rows = [
        ('empty module (korrigo_facts, version only)', 'empty_module', None, None),
        ('korrigo_facts, every subset', 'korrigo_facts', 'korrigo_facts_floor_sql', None),
        ('korrigo_facts, triage subsets', 'korrigo_facts_triage_subsets', 'korrigo_facts_floor_sql', None),
        ('korrigo_facts, triage subsets and audit (what triage runs)', 'korrigo_facts_triage_with_audit',
         'audit_trail_gaps_floor_sql', None),
        ('  subset copies', 'korrigo_facts_subset_copies', None, None),
        ('  subset stuck_imports', 'korrigo_facts_subset_stuck_imports', None, None),
        ('  subset finalizations', 'korrigo_facts_subset_finalizations', None, None),
        ('  subset locks', 'korrigo_facts_subset_locks', None, None),
        ('  subset annotations', 'korrigo_facts_subset_annotations', None, None),
        ('audit_trail, gaps (count_repeats: false, as triage)', 'audit_trail_gaps', 'audit_trail_gaps_floor_sql', 5.0),
        ('audit_trail, gaps and repeat counts (default)', 'audit_trail', 'audit_trail_floor_sql', 5.0),
        ('korrigo_latency_facts (sessions, connections, indexes, statements)', 'korrigo_latency_facts',
         'korrigo_latency_facts_floor_sql', None),
        ('copy_dossier, one copy', 'copy_dossier', 'copy_dossier_floor_sql', None),
        ('triage.yml, whole playbook', 'triage_playbook', None, 8.0),
    ]
    for label, name, floor, target in rows:
        value, base = _m(runs, name), _m(runs, floor) if floor else None
        ratio = value / base if value and base else None
        target_text = ''
        if target:
            target_text = 'under %.0f s: %s' % (target, _holds(value < target if value is not None else None))
        out.append(_row([label, _spread(runs, name), floor or '', base, ratio, target_text]))
    facts, empty = _m(runs, 'korrigo_facts'), _m(runs, 'empty_module')
    if facts is not None and empty is not None:
        out.append(_row(['korrigo_facts, every subset, beyond the empty module', '', '', None, None,
                         'under 1 s: %s (%.2f s)' % (_holds(facts - empty < 1.0), facts - empty)]))
    out.append('')
    plans = part.get('plans') or []
    if plans:
        out.append('### Plans (EXPLAIN ANALYZE of the modules\' own statements, their own parameters)')
        out.append('')
        out.append('| statement | EXPLAIN ANALYZE, s | sequential scans | why |')
        out.append('|---|---|---|---|')
        for plan in plans:
            why = '; '.join('%s: %s' % (t, WHY.get((plan['statement'], t), WHY.get(t, 'see the plan')))
                            for t in plan['seq_scans'])
            out.append(_row([plan['statement'], plan['explain_seconds'], ', '.join(plan['seq_scans']) or 'none',
                             why or '']))
        out.append('')
        for plan in plans:
            lines = [line for line in plan['plan'].splitlines()
                     if any(word in line for word in ('Scan', 'Aggregate', 'Join', 'Execution Time', 'Sort', 'CTE '))]
            out.append('<details><summary>%s</summary>' % plan['statement'])
            out.append('')
            out.append('```')
            out.extend(lines[:45])
            if len(lines) > 45:
                out.append('... (%d more lines in results.json)' % (len(lines) - 45))
            out.append('```')
            out.append('</details>')
            out.append('')


def locks(part, out):
    out.append('## Locks: release_expired_locks.yml')
    out.append('')
    out.append('`%s`; every measurement from a freshly seeded database, commit included.' % part.get('command'))
    out.append('')
    out.append('| N expired | playbook | copylock task | module alone | its statement by hand | floor with audit rows |'
               ' floor without | row by row | task / floor with audit (target <= 1.15) |'
               ' playbook - floor (target <= 2 s) | row by row / task (target >= 20) | statements sent |')
    out.append('|' + '---|' * 12)
    for n, runs in sorted(part.get('by_n', {}).items(), key=lambda kv: int(kv[0])):
        task, floor = _m(runs, 'copylock_task'), _m(runs, 'floor_with_audit')
        playbook, rbr = _m(runs, 'playbook'), _m(runs, 'row_by_row')
        out.append(_row([n, playbook, task, _m(runs, 'module'), _m(runs, 'statement'), floor,
                         _m(runs, 'floor_without_audit'), rbr,
                         task / floor if task and floor else None,
                         playbook - floor if playbook and floor else None,
                         rbr / task if rbr and task else None,
                         ', '.join(str(s) for s in runs.get('statements_sent', []))]))
    out.append('')


def fleet(part, out):
    fixed = part.get('fixed_cost', {})
    out.append('## Fixed cost of a playbook')
    out.append('')
    out.append('| play | min / median / max (runs), s |')
    out.append('|---|---|')
    for name, label in (('empty', 'empty play'), ('noop_module', 'one no-op module task (ping)'),
                        ('one_korrigo_module', 'one korrigo.ops module task (korrigo_facts, version)')):
        out.append(_row([label, _spread(fixed, name)]))
    out.append('')
    locks_1k = ((part.get('_all_parts') or {}).get('locks') or {}).get('by_n', {}).get('1000') or {}
    playbook, empty = _m(locks_1k, 'playbook'), _m(fixed, 'empty')
    if playbook and empty:
        own = playbook - empty
        out.append('release_expired_locks.yml at 1k expired locks (locks part) %.2f s - empty play %.2f s = the '
                   'collection\'s tasks %.2f s (target <= 1.5 s: %s).' % (playbook, empty, own, _holds(own <= 1.5)))
        out.append('')
    rows = part.get('fleet') or {}
    if rows:
        out.append('## A fleet')
        out.append('')
        out.append('`%s`' % part.get('command'))
        out.append('')
        out.append('| schools | forks | triage median, s | N x one school, s | triage / one school (target <= 5 at 20) |'
                   ' Ansible floor (triage\'s shape, no-op tasks), s | floor / floor at one school |'
                   ' release_expired_locks median, s | N x one school, s | release / one school |')
        out.append('|' + '---|' * 10)
        for n, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
            tri, rel, floor = row['triage'], row['release_expired_locks'], row.get('ansible_floor') or {}
            out.append(_row([n, row['forks'], tri['median'], tri.get('n_times_one_school'), tri.get('over_one_school'),
                             floor.get('median'), floor.get('over_one_school'),
                             rel['median'], rel.get('n_times_one_school'), rel.get('over_one_school')]))
        out.append('')
        out.append('The floor is benchmarks/playbooks/fleet_floor.yml: as many tasks per school as triage.yml runs, one '
                   'of them a module process, each doing nothing, over the same schools and forks.')
        out.append('')


def pdf(part, out):
    runs = part.get('runs', {})
    n = part.get('n', {})
    out.append('## PDFs and page images')
    out.append('')
    out.append('%s files (%s PDFs, %s pages; %s page images); `%s`.' % (
        n.get('files'), n.get('pdfs'), n.get('pdf_pages'), n.get('images'), part.get('command')))
    out.append('')
    out.append('| workers | pdf_check, s | bare open-and-count, s | bare same work, s |'
               ' pdf_check / bare same work throughput (target >= 0.8) | pdf_check / bare open-and-count |')
    out.append('|---|---|---|---|---|---|')
    for w in (1, 2):
        check, count, same = (_m(runs, 'pdf_check_%dw' % w), _m(runs, 'bare_open_count_%dw' % w),
                              _m(runs, 'bare_same_work_%dw' % w))
        out.append(_row([w, check, count, same, same / check if check and same else None,
                         count / check if check and count else None]))
    c1, c2 = _m(runs, 'pdf_check_1w'), _m(runs, 'pdf_check_2w')
    if c1 and c2:
        out.append('')
        out.append('pdf_check speed-up from 1 to 2 workers: %.2fx (near-linear would be close to 2).' % (c1 / c2))
    rb, rc = _m(runs, 'rasterize_bare'), _m(runs, 'rasterize_collection')
    out.append('')
    out.append('Rasterizing %s PDFs: collection %s s, bare render loop %s s: %s x (target <= 1.2).' % (
        n.get('rasterize_pdfs'), _fmt(rc), _fmt(rb), _fmt(rc / rb if rc and rb else None)))
    out.append('')


def work_lists(part, out):
    out.append('## Incidents at scale: failed finalizations and stuck imports, one playbook run each')
    out.append('')
    out.append('`%s`; a Celery worker of the benchmark\'s own (the stack\'s worker code on the host, its own database, '
               'media and Redis database).' % part.get('command'))
    out.append('')
    fin, imp = part.get('finalizations') or {}, part.get('imports') or {}
    if fin:
        out.append('- retry_failed_finalizations.yml: %s GRADING_FAILED and %s GRADING_IN_PROGRESS copies before, %s '
                   'after; playbook %s s = the worker finalizing (the wait task) %s s + the collection\'s own %s s '
                   '(selection, page-image checks, clamping, queueing, facts, report).' % (
                       fin.get('failed_before'), fin.get('in_progress_before'), fin.get('after'),
                       _fmt(fin.get('playbook_seconds')), _fmt(fin.get('worker_seconds')),
                       _fmt(fin.get('collection_seconds'))))
    if imp:
        out.append('- recover_stuck_imports.yml: %s STAGING copies before (%s importable, %s to flag), %s after; '
                   'playbook %s s, of which copy_import (checks and rasterizes every importable PDF itself, no '
                   'worker) %s s and the rest %s s.' % (
                       imp.get('staging_before'), imp.get('importable'), imp.get('flagged'), imp.get('after'),
                       _fmt(imp.get('playbook_seconds')), _fmt(imp.get('copy_import_seconds')),
                       _fmt(imp.get('rest_seconds'))))
    for label, data in (('finalizations', fin), ('imports', imp)):
        if data.get('tasks'):
            out.append('')
            out.append('<details><summary>%s: the longest tasks</summary>' % label)
            out.append('')
            out.append('| task | module | s |')
            out.append('|---|---|---|')
            for name, action, seconds in data['tasks']:
                out.append(_row([name.replace('|', '/'), action, seconds]))
            out.append('</details>')
    out.append('')


def write(results, path):
    out = ['# Benchmark results', '',
           'Written by `make bench` (benchmarks/bench.py) from benchmarks/results.json; how to read them: '
           'docs/benchmarks.md.', '']
    machine = results.get('machine', {})
    out.append('Run %s to %s, `%s`. Machine: %s, %s CPUs, %s MB; PostgreSQL %s (%s); ansible-core %s; Python %s; '
               'PyMuPDF %s.' % (results.get('started'), results.get('finished'), results.get('command'),
                                machine.get('cpu'), machine.get('cpus'), (machine.get('memory_kb') or 0) // 1024,
                                machine.get('postgresql'),
                                ', '.join('%s=%s' % kv for kv in sorted(machine.get('postgresql_settings', {}).items())),
                                machine.get('ansible_core'), machine.get('python'), machine.get('pymupdf')))
    out.append('')
    parts = results.get('parts', {})
    for name, part in parts.items():
        load = (part.get('load_before'), part.get('load_after'))
        others = sorted(set(p['command'].split(' -')[0][:90] for p in part.get('other_processes_at_start', []) +
                            part.get('other_processes_at_end', [])))
        out.append('- %s: load average before %s, after %s; other processes seen: %s' % (
            name, _fmt([round(x, 1) for x in load[0]] if load[0] else None),
            _fmt([round(x, 1) for x in load[1]] if load[1] else None), '; '.join(others) or 'none above 5 % CPU'))
    out.append('')
    for name, fn in (('read_path', read_path), ('locks', locks), ('fleet', fleet), ('pdf', pdf),
                     ('work_lists', work_lists)):
        part = parts.get(name)
        if not part:
            continue
        part = dict(part, _all_parts=parts)
        if part.get('error'):
            out.append('## %s: failed (%s)' % (name, part['error']))
            out.append('')
            continue
        fn(part, out)
    findings = os.path.join(os.path.dirname(os.path.abspath(path)), 'findings.md')
    if os.path.exists(findings):  # the hand-written reading of this run, kept between runs
        with open(findings) as src:
            out.append(src.read())
    with open(path, 'w') as dest:
        dest.write('\n'.join(out) + '\n')
