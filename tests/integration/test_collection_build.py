"""The built collection tarball installs offline into an empty collections path and works from the installed copy.

Only the installed copy is used (no repository link, no PYTHONPATH into the working tree, an empty ansible.cfg);
its dependency community.postgresql comes from the `ansible` package's bundled collections
(the venv's site-packages), as README "Installing" documents.
"""
import ast
import json
import os
import re
import subprocess
import sys
import sysconfig

import pytest
import yaml

from conftest import DB, ROOT

BIN = os.path.dirname(sys.executable)
with open(os.path.join(ROOT, 'galaxy.yml')) as _galaxy:
    GALAXY = yaml.safe_load(_galaxy)
TARBALL = '%s-%s-%s.tar.gz' % (GALAXY['namespace'], GALAXY['name'], GALAXY['version'])


def bundled_collections_root():
    """The site-packages directory whose ansible_collections/ holds the `ansible` package's collections."""
    root = sysconfig.get_paths()['purelib']
    for name in GALAXY['dependencies']:
        assert os.path.isdir(os.path.join(root, 'ansible_collections', *name.split('.'))), \
            '%s is not bundled in %s: install the ansible package (requirements-dev.txt)' % (name, root)
    return root


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """Build the tarball, install it with --offline into an empty path; return (collections dir, env, cwd)."""
    work = tmp_path_factory.mktemp('collection_build')
    dist, collections = work / 'dist', work / 'collections'
    collections.mkdir()
    config = work / 'ansible.cfg'
    config.write_text('[defaults]\n')
    env = dict((k, v) for k, v in os.environ.items() if k != 'PYTHONPATH')
    env.update(ANSIBLE_COLLECTIONS_PATH='%s:%s' % (collections, bundled_collections_root()),
               ANSIBLE_CONFIG=str(config), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    build = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(dist),
                            ROOT], capture_output=True, text=True, cwd=str(work), env=env, check=False)
    assert build.returncode == 0, build.stdout + build.stderr
    assert sorted(os.listdir(str(dist))) == [TARBALL]
    # What README "Installing" documents: offline, dependencies resolved from the installed collections.
    install = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline',
                              '-p', str(collections), str(dist / TARBALL)],
                             capture_output=True, text=True, cwd=str(work), env=env, check=False, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    for name in GALAXY['dependencies']:
        assert "'%s:" % name in install.stdout and 'already installed' in install.stdout, install.stdout
    return collections, env, work


def run(command, installed, **kwargs):
    _collections, env, cwd = installed
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=str(cwd), check=False,
                          timeout=kwargs.pop('timeout', 300), **kwargs)


def test_tarball_installs_offline_into_an_empty_path(installed):
    collections = installed[0]
    manifest = json.loads((collections / 'ansible_collections' / 'korrigo' / 'ops' / 'MANIFEST.json').read_text())
    assert manifest['collection_info']['version'] == GALAXY['version']
    assert manifest['collection_info']['dependencies'] == GALAXY['dependencies']
    assert 'example' not in json.dumps(manifest['collection_info'])
    # The version module_utils writes into core_auditlog.user_agent is the one galaxy.yml ships.
    module_utils = collections / 'ansible_collections' / 'korrigo' / 'ops' / 'plugins' / 'module_utils'
    for path in sorted(module_utils.glob('*.py')):
        for found in re.findall(r"^COLLECTION_VERSION = '([^']*)'", path.read_text(), re.M):
            assert found == GALAXY['version'], '%s: COLLECTION_VERSION %s, galaxy.yml %s' % (
                path.name, found, GALAXY['version'])
    # The dependencies were found where the ansible package put them, not copied next to ours.
    assert sorted(os.listdir(str(collections / 'ansible_collections'))) == ['korrigo']


def test_installed_module_runs(installed, korrigo_head):
    args = ' '.join('%s=%s' % item for item in dict(DB, login_db=korrigo_head.name).items())
    proc = run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'korrigo.ops.korrigo_facts', '-a',
                args + ' gather_subset=version', '-o'], installed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split('=>', 1)[1])
    assert result['ansible_facts']['korrigo']['version']['name'] == 'head'


def test_installed_playbook_by_fqcn_releases_expired_locks(installed, korrigo_head):
    seeded = korrigo_head.seed('locks')
    expired = seeded['expired_copy_ids']
    reports = installed[2] / 'reports'
    proc = run([os.path.join(BIN, 'ansible-playbook'), 'korrigo.ops.release_expired_locks',
                '-i', os.path.join(ROOT, 'inventories', 'local'),
                '-e', json.dumps({'korrigo_db_name': korrigo_head.name, 'korrigo_report_dir': str(reports)})],
               installed, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # The playbook and its roles came from the installed copy.
    assert 'korrigo.ops.lock_conflicts' in proc.stdout
    assert korrigo_head.scalar('SELECT count(*) FROM grading_copylock WHERE expires_at < now()') == 0
    assert korrigo_head.scalar("SELECT count(*) FROM exams_copy WHERE id::text = ANY(%s) AND status = 'LOCKED'",
                               ([str(i) for i in expired],)) == 0
    report = json.loads((reports / 'lock_conflicts-korrigo-local.json').read_text())
    # (the seed also holds an active lock older than an hour: reported for a human, never released)
    assert 'resolved' in report['status'] and len(report['done']) == len(expired)


def defined_filters(filter_dir):
    """Every filter name the collection's FilterModule classes return (a dict literal in filters())."""
    names = []
    for filename in sorted(os.listdir(filter_dir)):
        if not filename.endswith('.py'):
            continue
        tree = ast.parse((filter_dir / filename).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == 'filters':
                returned = [n.value for n in ast.walk(node) if isinstance(n, ast.Return)]
                assert len(returned) == 1 and isinstance(returned[0], ast.Dict), \
                    '%s: filters() must return a dict literal for this test to read it' % filename
                names.extend(key.value for key in returned[0].keys)
    return sorted(names)


def listed(installed, plugin_type):
    proc = run([os.path.join(BIN, 'ansible-doc'), '-t', plugin_type, '-l', 'korrigo.ops', '--json'], installed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return sorted(name.split('.', 2)[2] for name in json.loads(proc.stdout))


@pytest.mark.parametrize('plugin_type', ['module', 'filter', 'role'])
def test_ansible_doc_renders_every_plugin_and_role(installed, plugin_type):
    root = installed[0] / 'ansible_collections' / 'korrigo' / 'ops'
    if plugin_type == 'module':
        expected = sorted(f[:-3] for f in os.listdir(str(root / 'plugins' / 'modules'))
                          if f.endswith('.py') and not f.startswith('_'))
    elif plugin_type == 'filter':
        expected = defined_filters(root / 'plugins' / 'filter')
    else:
        expected = sorted(os.listdir(str(root / 'roles')))
    assert expected and listed(installed, plugin_type) == expected
    names = ['korrigo.ops.%s' % name for name in expected]
    proc = run([os.path.join(BIN, 'ansible-doc'), '-t', plugin_type] + names, installed)
    problems = [line for line in proc.stderr.splitlines() if re.search(r'\[(ERROR|WARNING)\]', line)]
    assert proc.returncode == 0 and not problems, proc.stderr
    for name in names:
        if plugin_type == 'role' and not (root / 'roles' / name.split('.')[2] / 'meta' / 'argument_specs.yml').exists():
            continue  # a role without argument specs (common: defaults and the report only) renders no page
        assert re.search(r'^> %s:? \*?%s\*? \(%s' % (plugin_type.upper(), re.escape(name), re.escape(str(root))),
                         proc.stdout, re.M), '%s rendered no page from the installed copy' % name
