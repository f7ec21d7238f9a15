"""The HTML report of a real run, rendered by headless Chromium (Debian's package): DOM and screenshot."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

P3_BADGE = (0xa1, 0x62, 0x07)  # SEVERITY_COLORS['P3'] in plugins/filter/report.py


def chromium():
    """Debian's chromium; installed with apt-get when missing (as .ci/run does from tests/stack/apt-packages.txt)."""
    found = shutil.which('chromium') or shutil.which('chromium-browser')
    if not found and os.geteuid() == 0 and shutil.which('apt-get'):
        subprocess.run(['apt-get', 'install', '-y', '-qq', 'chromium'], capture_output=True, timeout=900,
                       check=False, env=dict(os.environ, DEBIAN_FRONTEND='noninteractive'))
        found = shutil.which('chromium')
    if not found:
        pytest.skip('chromium is not installed and could not be installed')
    return found


def headless(browser, tmp_path, *args):
    command = [browser, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
               '--user-data-dir=%s' % (tmp_path / 'profile')] + list(args)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def locks_report(korrigo_head, tmp_path):
    """release_expired_locks.yml run against the stack seeded with the baseline and a lock incident."""
    korrigo_head.seed('baseline')
    korrigo_head.seed('locks')
    reports = tmp_path / 'reports'
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.cache', 'collections'))
    proc = subprocess.run(['ansible-playbook', os.path.join(ROOT, 'playbooks', 'release_expired_locks.yml'),
                           '-i', os.path.join(ROOT, 'inventories', 'local'), '-e', 'korrigo_db_name=%s' % korrigo_head.name,
                           '-e', 'korrigo_report_dir=%s' % reports], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    with open(str(reports / 'lock_conflicts-korrigo-local-latest.json')) as handle:
        return reports, json.load(handle)


def test_html_report_renders_the_key_figures(locks_report, tmp_path):
    import pymupdf

    reports, report = locks_report
    page = report['files']['html']
    assert os.path.dirname(page) == str(reports) and os.path.basename(page).startswith('lock_conflicts-korrigo-local-')
    with open(page) as handle:
        assert handle.read() == open(str(reports / 'lock_conflicts-korrigo-local-latest.html')).read()
    browser = chromium()

    dom = headless(browser, tmp_path, '--dump-dom', 'file://' + page)
    anonymous_ids = report['actions']['anonymous_ids']
    assert report['severity'] == 'P3' and len(anonymous_ids) == 5
    assert '>P3</span>' in dom and 'id="severity"' in dom
    assert 'id="done-count">%d<' % len(report['done']) in dom
    assert 'id="human-count">%d<' % len(report['needs_human']) in dom
    for anonymous_id in anonymous_ids:
        assert anonymous_id in dom
    assert 'expired_total' in dom and 'korrigo-local' in dom

    shot = tmp_path / 'report.png'
    headless(browser, tmp_path, '--screenshot=%s' % shot, '--window-size=1200,1600', 'file://' + page)
    assert shot.stat().st_size > 20000
    pixmap = pymupdf.Pixmap(str(shot))
    assert (pixmap.width, pixmap.height) == (1200, 1600)
    colours = set()
    for y in range(0, pixmap.height, 8):
        for x in range(0, pixmap.width, 8):
            colours.add(pixmap.pixel(x, y)[:3])
    assert len(colours) > 20, 'the screenshot is (nearly) one colour'
    # The severity badge was painted with its inline style (top-left quarter of the page).
    badge = [(x, y) for y in range(0, 400, 2) for x in range(0, 600, 2) if pixmap.pixel(x, y)[:3] == P3_BADGE]
    assert len(badge) > 100
    keep = os.environ.get('KORRIGO_KEEP_SCREENSHOT')
    if keep:
        shutil.copy(str(shot), keep)
