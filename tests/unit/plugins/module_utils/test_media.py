"""module_utils/media.py: paths stay inside the media root."""
import os

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import media


@pytest.fixture(name='root')
def root_fixture(tmp_path):
    (tmp_path / 'copies' / 'source').mkdir(parents=True)
    return os.path.realpath(str(tmp_path))


@pytest.mark.parametrize('path', ['../x.pdf', 'copies/../../x.pdf', '/etc/passwd', '', 'a\x00b'])
def test_resolve_refuses_paths_outside_the_media_root(root, path):
    with pytest.raises(media.OutsideMediaRoot):
        media.resolve(root, path)


def test_resolve_follows_symlinks(root):
    os.symlink('/etc', os.path.join(root, 'copies', 'source', 'escape'))
    with pytest.raises(media.OutsideMediaRoot):
        media.resolve(root, 'copies/source/escape/passwd')
    assert media.resolve(root, os.path.join(root, 'copies', 'a.pdf')) == ('copies/a.pdf', os.path.join(root, 'copies', 'a.pdf'))
