"""The built collection tarball installs and its modules run from the installed copy."""
import json
import os
import subprocess
import sys

from conftest import DB, ROOT

BIN = os.path.dirname(sys.executable)


def test_built_collection_installs_and_runs(tmp_path, stack):
    dist, installed = tmp_path / 'dist', tmp_path / 'collections'
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(dist), ROOT],
                   check=True, capture_output=True, cwd=str(tmp_path))
    tarball = [name for name in os.listdir(str(dist)) if name.endswith('.tar.gz')]
    assert tarball == ['korrigo-ops-0.1.0.tar.gz']
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--force', '-p', str(installed),
                    str(dist / tarball[0])], check=True, capture_output=True, cwd=str(tmp_path))
    assert (installed / 'ansible_collections' / 'korrigo' / 'ops' / 'MANIFEST.json').exists()
    config = tmp_path / 'ansible.cfg'
    config.write_text('[defaults]\n')
    # Only the installed copy: no repository link, no PYTHONPATH into the working tree.
    env = dict((k, v) for k, v in os.environ.items() if k != 'PYTHONPATH')
    env.update(ANSIBLE_COLLECTIONS_PATH=str(installed), ANSIBLE_CONFIG=str(config))
    args = ' '.join('%s=%s' % item for item in DB.items()) + ' gather_subset=version'
    run = subprocess.run([os.path.join(BIN, 'ansible'), 'localhost', '-m', 'korrigo.ops.korrigo_facts', '-a', args,
                          '-o'], env=env, capture_output=True, text=True, cwd=str(tmp_path), check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert str(installed) in subprocess.run(
        [os.path.join(BIN, 'ansible-doc'), '-t', 'module', 'korrigo.ops.copylock'], env=env, capture_output=True,
        text=True, cwd=str(tmp_path), check=True).stdout
    result = json.loads(run.stdout.split('=>', 1)[1])
    assert result['ansible_facts']['korrigo']['version']['name'] == 'head'
