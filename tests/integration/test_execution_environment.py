"""ansible-builder turns meta/execution-environment.yml into a complete build context (no image is built here:
no container registry is reachable; the context is what `ansible-builder build` hands to podman or docker)."""
import os
import subprocess
import sys

import yaml

from conftest import ROOT

BIN = os.path.dirname(sys.executable)


def requirement_names(path):
    names = set()
    with open(path) as handle:
        for line in handle:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                names.add(line.split(';')[0].split('[')[0].split('>')[0].split('<')[0].split('=')[0].strip().lower())
    return names


def test_ansible_builder_create_writes_the_build_context(tmp_path):
    # The collection tarball the EE installs, built where the EE file expects it (.cache is git-ignored).
    dist = os.path.join(ROOT, '.cache', 'ee')
    os.makedirs(dist, exist_ok=True)
    for name in os.listdir(dist):
        if name.endswith('.tar.gz'):
            os.unlink(os.path.join(dist, name))
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', dist,
                    ROOT], check=True, capture_output=True, cwd=str(tmp_path))
    tarball = [name for name in os.listdir(dist) if name.endswith('.tar.gz')]
    assert len(tarball) == 1

    context = tmp_path / 'context'
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '--file',
                           os.path.join(ROOT, 'meta', 'execution-environment.yml'), '--context', str(context),
                           '--output-filename', 'Containerfile'], capture_output=True, text=True, check=False,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / 'Containerfile').read_text()
    assert 'FROM quay.io/centos/centos:stream9' in containerfile or 'ARG EE_BASE_IMAGE="quay.io/centos/centos:stream9"' \
        in containerfile
    assert 'ansible-galaxy collection install --no-deps -p /usr/share/ansible/collections' in containerfile

    build = context / '_build'
    # Python: every package of requirements.txt, plus ansible-core and ansible-runner.
    assert requirement_names(str(build / 'requirements.txt')) == requirement_names(
        os.path.join(ROOT, 'requirements.txt'))
    for package in ('psycopg2-binary', 'redis', 'pymupdf', 'docker', 'celery', 'prometheus-client'):
        assert package in requirement_names(str(build / 'requirements.txt'))
    assert 'ansible-core' in containerfile and 'ansible-runner' in containerfile
    # System: bindep.txt as it is.
    bindep = (build / 'bindep.txt').read_text()
    assert bindep == open(os.path.join(ROOT, 'bindep.txt')).read()
    assert 'libpq [platform:rpm]' in bindep and 'postgresql-client [platform:dpkg]' in bindep
    # Galaxy: the collections the roles use.
    galaxy = yaml.safe_load((build / 'requirements.yml').read_text())
    assert {'community.postgresql'} <= set(c['name'] for c in galaxy['collections'])
    # This collection itself, from the tarball of this checkout.
    assert os.listdir(str(build / 'korrigo')) == tarball
