"""Hostile input against the real schema: property-based (hypothesis) database contents and module arguments.

Examples are few (the stack is shared, CI stays fast) and deadlines are off (a module run takes a second)."""
import math
import os
import uuid

import pytest

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from conftest import run_module  # noqa: E402
from korrigo_stack import scenarios_import as pdfs  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

COORDINATE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float('nan'), float('inf'), -float('inf'), 1e308, -1e308, 5e-324, 0.0, 1.0, 1 + 1e-15]),
    st.floats(min_value=-3, max_value=3),
)
# Quotes, backslashes, SQL, unicode (combining marks, RTL, emoji, astral planes); never NUL (PostgreSQL text refuses it).
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["'; DROP TABLE exams_copy; --", 'Robert"); DELETE FROM grading_copylock; --', "%(actor_id)s",
                     "$$ || pg_sleep(10) || $$", "\\x00\\'", "Élève \u202egnp.exe", "名前 🎓 𝔘𝔫𝔦", "O'Brien \"quoted\""]),
    st.text(alphabet=st.characters(blacklist_categories=('Cs',), blacklist_characters='\x00'), min_size=1,
            max_size=60),
)
SQL_LOOKING = st.sampled_from(["'; DROP TABLE exams_copy; --", "1 OR 1=1", "x'); TRUNCATE core_auditlog; --",
                               "%s", "%(copy_ids)s", "$1", "\\'; SELECT pg_sleep(5); --", "'||(SELECT 1)||'"])


def in_bounds(row):
    values = (row['x'], row['y'], row['w'], row['h'])
    return (all(math.isfinite(v) for v in values) and min(values) >= 0
            and row['x'] + row['w'] <= 1 and row['y'] + row['h'] <= 1)


@pytest.fixture(name='oob')
def oob_fixture(korrigo):
    seeded = korrigo.seed('finalization')
    return korrigo, seeded['out_of_bounds_copy_ids'][0]


def test_nan_and_huge_coordinates_are_clamped_into_the_page_and_no_row_is_lost(oob):
    """Matrix: NaN, infinite and huge annotation coordinates in the database (hypothesis) | annotation_bounds
    clamps every box into the page (finite, inside 0..1), keeps every row, its content and score"""
    korrigo, copy_id = oob

    @settings(max_examples=6, **SETTINGS)
    @given(boxes=st.lists(st.tuples(COORDINATE, COORDINATE, COORDINATE, COORDINATE), min_size=1, max_size=4))
    def clamp(boxes):
        rows = korrigo.query('SELECT id, content, score_delta FROM grading_annotation WHERE copy_id = %s ORDER BY id',
                             (copy_id,))
        assert rows
        for row, (x, y, w, h) in zip(rows, boxes * len(rows)):
            korrigo.query('UPDATE grading_annotation SET x = %s, y = %s, w = %s, h = %s WHERE id = %s RETURNING id',
                          (x, y, w, h, row['id']))
        result = korrigo.run('annotation_bounds', copy_ids=[copy_id], max_changes=1000)
        assert result.get('failed') is not True, result
        after = korrigo.query('SELECT id, content, score_delta, x, y, w, h FROM grading_annotation '
                              'WHERE copy_id = %s ORDER BY id', (copy_id,))
        assert [(r['id'], r['content'], r['score_delta']) for r in after] == \
            [(r['id'], r['content'], r['score_delta']) for r in rows]
        assert all(in_bounds(r) for r in after), after
        assert korrigo.run('annotation_bounds', copy_ids=[copy_id])['changed'] is False

    clamp()


def test_unicode_quotes_and_nulls_in_names_and_messages_come_back_as_data(korrigo):
    """Matrix: unicode, quotes and SQL in grading_error_message, usernames, first names, anonymous ids; NULLs where
    Korrigo allows them (hypothesis) | korrigo_facts and copy_dossier return them unchanged, as data"""
    seeded = korrigo.seed('finalization')
    copy_id = seeded['unknown_copy_ids'][0]
    teacher = korrigo.scalar('SELECT actor_id FROM grading_gradingevent WHERE copy_id = %s AND actor_id IS NOT NULL '
                             'LIMIT 1', (copy_id,))

    @settings(max_examples=4, **SETTINGS)
    @given(message=st.one_of(st.none(), HOSTILE_TEXT), name=HOSTILE_TEXT, anonymous=HOSTILE_TEXT)
    def roundtrip(message, name, anonymous):
        anonymous = anonymous[:40] + '-' + uuid.uuid4().hex[:8]
        username = (name[:120] + uuid.uuid4().hex[:8])
        korrigo.query('UPDATE exams_copy SET grading_error_message = %s, anonymous_id = %s WHERE id = %s '
                      'RETURNING id', (message, anonymous, copy_id))
        korrigo.query('UPDATE auth_user SET username = %s, first_name = %s WHERE id = %s RETURNING id',
                      (username, name[:150], teacher))
        before = korrigo.checksums()
        facts = korrigo.run('korrigo_facts', gather_subset=['finalizations'], list_limit=1000)
        assert facts.get('failed') is not True, facts
        copies = dict((c['copy_id'], c) for c in facts['ansible_facts']['korrigo']['finalizations']['copies'])
        assert copies[copy_id]['anonymous_id'] == anonymous
        assert copies[copy_id]['grading_error_message'] == message
        dossier = korrigo.run('copy_dossier', copies=[copy_id], media_root=seeded['media_root'])
        assert dossier.get('failed') is not True, dossier
        text = repr(dossier)
        assert anonymous in text or repr(anonymous)[1:-1] in text
        assert korrigo.checksums() == before

    roundtrip()


def test_sql_looking_strings_in_string_options_are_refused_or_stored_as_data(korrigo):
    """Matrix: SQL-looking strings in every string option of the remediations (reason, remediation_user, copy ids,
    anonymous ids, mode, statuses, media paths) | refused with a message or stored verbatim as data; never
    executed, every table intact"""
    seeded = korrigo.seed('locks')
    active = korrigo.query('SELECT copy_id::text AS c FROM grading_copylock WHERE expires_at > now() LIMIT 1')[0]['c']

    @settings(max_examples=3, **SETTINGS)
    @given(evil=SQL_LOOKING)
    def options(evil):
        before = korrigo.checksums()
        tables = korrigo.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        for module, args in [
            ('copylock', dict(copy_ids=[evil], force=True, reason='x')),
            ('copylock', dict(expired=True, remediation_user=evil)),
            ('annotation_bounds', dict(copy_ids=[str(uuid.uuid4())], mode=evil)),
            ('annotation_bounds', dict(all_copies=True, statuses=[evil])),
            ('copy_status', dict(copy_ids=[evil])),
            ('copy_dossier', dict(copies=[evil], media_root=seeded.get('media_root', '/tmp'))),
            ('korrigo_facts', dict(gather_subset=[evil])),
            ('audit_trail', dict(record_notes=True, reason=evil, remediation_user=evil)),
        ]:
            result = korrigo.run(module, **args)
            assert result.get('failed') is True, (module, args, result)
            assert 'Traceback' not in result.get('msg', '') and 'syntax error' not in result.get('msg', ''), result
        assert korrigo.checksums() == before
        # Accepted as data: the reason of a force-release is stored verbatim in Korrigo's trail.
        forced = korrigo.run('copylock', copy_ids=[active], force=True, reason=evil)
        assert forced.get('failed') is not True and forced['count'] == 1, forced
        stored = korrigo.query("SELECT metadata FROM core_auditlog WHERE resource_id = %s ORDER BY timestamp DESC "
                               "LIMIT 1", (active,))
        assert evil in repr(stored[0]['metadata']) or evil in str(stored[0]['metadata']), stored
        assert korrigo.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables
        korrigo.seed('locks')

    options()


def test_hostile_pdfs_and_page_images_get_a_verdict(tmp_path):
    """Matrix: PDFs and page images that are empty, truncated, random bytes, encrypted, enormous (sparse 6 GB) or
    symlinks out of the media root (hypothesis over the bytes) | pdf_check gives each a verdict (empty, corrupted,
    encrypted, too_large, refused), never ok, never a crash"""
    media = tmp_path / 'media'
    (media / 'copies' / 'source').mkdir(parents=True)
    (media / 'copies' / 'pages').mkdir(parents=True)
    source = media / 'copies' / 'source'
    valid = pdfs.valid_pdf(2)
    (source / 'empty.pdf').write_bytes(b'')
    (source / 'truncated.pdf').write_bytes(valid[:len(valid) // 2])
    (source / 'encrypted.pdf').write_bytes(pdfs.encrypted_pdf())
    with open(str(source / 'enormous.pdf'), 'wb') as handle:  # sparse: 6 GB on paper, nothing on disk
        handle.write(valid)
        handle.truncate(6 * 1024 ** 3)
    os.symlink('/etc/passwd', str(source / 'escape.pdf'))
    os.symlink(str(tmp_path), str(source / 'dir-escape'))
    (tmp_path / 'outside.pdf').write_bytes(valid)
    expected = {'copies/source/empty.pdf': 'empty', 'copies/source/truncated.pdf': 'corrupted',
                'copies/source/encrypted.pdf': 'encrypted', 'copies/source/enormous.pdf': 'too_large',
                'copies/source/escape.pdf': 'refused', 'copies/source/dir-escape/outside.pdf': 'refused',
                '../outside.pdf': 'refused', '/etc/passwd': 'refused'}
    result = run_module('pdf_check', media_root=str(media), paths=sorted(expected))
    assert result.get('failed') is not True, result
    got = dict((f['path'], f['verdict']) for f in result['files'])
    assert sorted(got.values()) == sorted(expected.values()), got
    for name in ('empty', 'truncated', 'encrypted', 'enormous'):
        assert got['copies/source/%s.pdf' % name] == expected['copies/source/%s.pdf' % name], got

    @settings(max_examples=6, **SETTINGS)
    @given(data=st.one_of(st.binary(min_size=1, max_size=2048),
                          st.integers(min_value=1, max_value=len(valid) - 1).map(lambda n: valid[:n]),
                          st.binary(min_size=1, max_size=64).map(lambda b: b'%PDF-1.7\n' + b)))
    def garbage(data):
        (source / 'fuzz.pdf').write_bytes(data)
        (media / 'copies' / 'pages' / 'fuzz.png').write_bytes(data)
        checked = run_module('pdf_check', media_root=str(media), paths=['copies/source/fuzz.pdf'])
        image = run_module('pdf_check', media_root=str(media), paths=['copies/pages/fuzz.png'], kind='image')
        for answer in (checked, image):
            assert answer.get('failed') is not True, answer
            assert answer['files'][0]['verdict'] in ('ok', 'empty', 'corrupted', 'encrypted', 'unreadable',
                                                     'too_many_pages', 'timeout'), answer
        assert checked['files'][0]['verdict'] != 'ok' or data.startswith(b'%PDF')

    garbage()
