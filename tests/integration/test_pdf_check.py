"""pdf_check against real PDFs made with PyMuPDF: every verdict, the limits, containment, media root discovery."""
import os
import time

import pytest

from conftest import ROOT, run_module
from korrigo_stack import scenarios_import as pdfs


@pytest.fixture(name='media')
def media_fixture(tmp_path):
    source = tmp_path / 'copies' / 'source'
    source.mkdir(parents=True)
    valid = pdfs.valid_pdf(3)
    files = {
        'ok.pdf': valid,
        'empty.pdf': b'',
        'corrupted.pdf': pdfs.corrupted_pdf(),
        'truncated.pdf': valid[:len(valid) * 2 // 3],
        'encrypted.pdf': pdfs.encrypted_pdf(),
        'big.pdf': valid + b'%' + b'0' * (2 * 1024 * 1024),
    }
    for name, data in files.items():
        (source / name).write_bytes(data)
    (tmp_path / 'secret.txt').write_text('outside')
    os.symlink('/etc/passwd', str(source / 'link.pdf'))
    return tmp_path


def check(media, paths, **args):
    return run_module('pdf_check', media_root=str(media), paths=paths, **args)


def verdicts(result):
    return dict((f['path'], f['verdict']) for f in result['files'])


def test_each_verdict_with_real_files(media):
    result = check(media, ['copies/source/%s' % n for n in ('ok.pdf', 'missing.pdf', 'empty.pdf', 'corrupted.pdf',
                                                            'truncated.pdf', 'encrypted.pdf', 'big.pdf')],
                   max_size_mb=1)
    assert result['changed'] is False and not result.get('failed'), result
    assert verdicts(result) == {
        'copies/source/ok.pdf': 'ok', 'copies/source/missing.pdf': 'missing', 'copies/source/empty.pdf': 'empty',
        'copies/source/corrupted.pdf': 'corrupted', 'copies/source/truncated.pdf': 'corrupted',
        'copies/source/encrypted.pdf': 'encrypted', 'copies/source/big.pdf': 'too_large'}
    files = dict((f['path'], f) for f in result['files'])
    assert files['copies/source/ok.pdf']['pages'] == 3
    assert 'repair' in files['copies/source/truncated.pdf']['detail']
    assert result['summary']['corrupted'] == 2 and result['all_ok'] is False


def test_too_many_pages(media):
    assert verdicts(check(media, ['copies/source/ok.pdf'], max_pages=2)) == {'copies/source/ok.pdf': 'too_many_pages'}


def test_a_pdf_that_hangs_mupdf_is_killed_at_the_time_limit(media):
    for k in range(3):
        (media / 'copies' / 'source' / ('heavy%d.pdf' % k)).write_bytes(pdfs.heavy_pdf())
    started = time.time()
    result = check(media, ['copies/source/heavy%d.pdf' % k for k in range(3)], timeout=2, parallel=3)
    assert set(verdicts(result).values()) == {'timeout'}, result['files']
    assert time.time() - started < 15  # in parallel, each killed at 2 s


def test_a_pdf_that_eats_memory_is_stopped_by_the_memory_limit(media):
    import fitz
    doc = fitz.open()
    doc.new_page(width=9000, height=9000)  # 18000 x 18000 px at Korrigo's 2x: ~970 MB of pixels
    (media / 'copies' / 'source' / 'huge.pdf').write_bytes(doc.tobytes())
    result = check(media, ['copies/source/huge.pdf'], memory_limit_mb=400, timeout=60)
    assert verdicts(result) == {'copies/source/huge.pdf': 'too_large'}, result['files']


@pytest.mark.parametrize('path', ['../secret.txt', 'copies/../../secret.txt', 'copies/source/link.pdf', '/etc/passwd'])
def test_paths_outside_the_media_root_are_refused_never_opened(media, path):
    result = check(media, [path, 'copies/source/ok.pdf'])
    assert [f['verdict'] for f in result['files']] == ['refused', 'ok']
    assert 'outside the media root' in result['files'][0]['detail']


def test_media_root_is_found_from_the_backend_containers_mount(stack):
    result = run_module('pdf_check', compose_project='korrigo', paths=['copies/source/none.pdf'])
    assert result['media_root'] == os.path.realpath(os.path.join(ROOT, 'tests', 'stack', '.run', 'media'))
    assert verdicts(result) == {'copies/source/none.pdf': 'missing'}


def test_no_media_root_is_a_clear_failure(tmp_path):
    result = run_module('pdf_check', paths=['x.pdf'])
    assert result['failed'] and 'media_root' in result['msg']
    result = run_module('pdf_check', media_root=str(tmp_path / 'nope'), paths=['x.pdf'])
    assert result['failed'] and 'not a directory' in result['msg']
