"""`make bench`: every scenario at scale, each against its floor in the same run; writes benchmarks/results.json and
benchmarks/RESULTS.md (docs/benchmarks.md explains how to read them).

Usage: python benchmarks/bench.py [--only read_path,locks,fleet,pdf,work_lists] [--repeat 3] [--keep] [--quick]
                                  [--report-only]

Each part is its own script (bench_read_path.py, bench_locks.py, bench_fleet.py, bench_pdf.py,
bench_work_lists.py), run here as a
child printing JSON; results.json keeps them with the machine, the versions, the load average around each part and
what else was running (the machine is shared). --quick runs every part at small N (development, not results).
--report-only rewrites RESULTS.md from results.json.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import report  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = {
    'read_path': ['bench_read_path.py'],
    'locks': ['bench_locks.py'],
    'fleet': ['bench_fleet.py'],
    'pdf': ['bench_pdf.py'],
    'work_lists': ['bench_work_lists.py'],
}
QUICK = {
    'read_path': ['--copies', '20000', '--events', '100000', '--locks', '200', '--db', 'korrigo_bench_district_quick'],
    'locks': ['--counts', '100,1000', '--row-by-row-max', '1000'],
    'fleet': ['--schools', '1,2'],
    'pdf': ['--files', '40', '--rasterize', '10'],
    'work_lists': ['--failed', '50', '--stuck', '20'],
}


def run_part(name, extra, repeat):
    cmd = [sys.executable, os.path.join(HERE, PARTS[name][0]), '--repeat', str(repeat)] + extra
    print('== %s: %s' % (name, ' '.join(cmd[1:])), file=sys.stderr)
    started = time.perf_counter()
    busy = common.busy_processes()
    proc = subprocess.run(cmd, env=common.env(), stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        return {'error': 'exit %d' % proc.returncode, 'output': proc.stdout[-2000:], 'command': ' '.join(cmd[1:])}
    out = json.loads(proc.stdout)
    out['command'] = 'python ' + ' '.join(os.path.relpath(c, common.ROOT) if c.startswith(common.ROOT) else c
                                          for c in cmd[1:])
    out['wall_seconds'] = round(time.perf_counter() - started, 1)
    out['other_processes_at_start'] = busy
    out['other_processes_at_end'] = common.busy_processes()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--only', default=','.join(PARTS))
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--keep', action='store_true', help='keep the district database between runs')
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--report-only', action='store_true')
    parser.add_argument('--part-args', action='append', default=[], metavar='PART=ARGS',
                        help='extra arguments for one part, e.g. locks="--counts 1000,10000"')
    opts = parser.parse_args(argv)
    path = os.path.join(HERE, 'results.json')
    if opts.report_only:
        with open(path) as src:
            results = json.load(src)
        report.write(results, os.path.join(HERE, 'RESULTS.md'))
        return 0
    results = {}
    if os.path.exists(path):
        with open(path) as src:
            results = json.load(src)
    results.update(started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), machine=common.machine(),
                   command='python benchmarks/bench.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    results.setdefault('parts', {})
    extras = dict(item.split('=', 1) for item in opts.part_args)
    for name in opts.only.split(','):
        extra = list(QUICK[name]) if opts.quick else []
        if opts.keep and name == 'read_path':
            extra.append('--keep')
        extra += extras.get(name, '').split()
        results['parts'][name] = run_part(name, extra, 1 if opts.quick else opts.repeat)
        with open(path, 'w') as out:
            json.dump(results, out, indent=1, sort_keys=True)
    results['finished'] = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    with open(path, 'w') as out:
        json.dump(results, out, indent=1, sort_keys=True)
    report.write(results, os.path.join(HERE, 'RESULTS.md'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
