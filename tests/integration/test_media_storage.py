"""media_storage on a real media tree: disk facts, old temporary uploads, orphaned page directories."""
import os
import time
import uuid

import psycopg2

from conftest import dsn_for


def media_tree(root, existing_copy):
    """temp_uploads with one 30 h old and one fresh upload; pages of an existing and of a vanished copy."""
    for name, age_hours in (('old_scan.pdf', 30), ('fresh_scan.pdf', 0)):
        path = root / 'temp_uploads' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'%PDF-1.4 teacher scan')
        stamp = time.time() - age_hours * 3600
        os.utime(str(path), (stamp, stamp))
    vanished = str(uuid.uuid4())
    for copy_id in (existing_copy, vanished):
        page = root / 'copies' / 'pages' / copy_id / 'p000.png'
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_bytes(b'png')
    return vanished


def test_reports_then_cleans_only_what_is_asked(korrigo_head, tmp_path):
    seeded = korrigo_head.seed('baseline')
    existing = seeded['copy_ids_by_status']['READY'][0]
    media = tmp_path / 'media'
    vanished = media_tree(media, existing)

    report = korrigo_head.run('media_storage', media_root=str(media))
    assert report['changed'] is False and report['removed'] == []
    assert report['temp_uploads']['old'] == ['temp_uploads/old_scan.pdf']
    assert report['orphaned_page_dirs'] == ['copies/pages/%s' % vanished]
    assert report['disk']['free_bytes'] > 0 and report['disk']['inodes_total'] > 0

    dry = korrigo_head.run('media_storage', check_mode=True, media_root=str(media), clean_temp_uploads=True,
                           remove_orphaned_pages=True)
    assert dry['changed'] is True and dry['count'] == 2
    assert (media / 'temp_uploads' / 'old_scan.pdf').exists() and (media / 'copies' / 'pages' / vanished).exists()

    backup = tmp_path / 'backup'
    done = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True,
                            remove_orphaned_pages=True, backup_dir=str(backup))
    assert done['count'] == 2 and done['backed_up_to'].startswith(str(backup))
    assert not (media / 'temp_uploads' / 'old_scan.pdf').exists()
    assert (media / 'temp_uploads' / 'fresh_scan.pdf').exists()
    assert (media / 'copies' / 'pages' / existing / 'p000.png').exists()
    kept = os.path.join(done['backed_up_to'], 'temp_uploads', 'old_scan.pdf')
    assert open(kept, 'rb').read() == b'%PDF-1.4 teacher scan'
    assert os.path.exists(os.path.join(done['backed_up_to'], 'copies', 'pages', vanished, 'p000.png'))

    again = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True,
                             remove_orphaned_pages=True)
    assert again['changed'] is False and again['count'] == 0


def test_guards(korrigo_head, tmp_path):
    korrigo_head.seed('baseline')
    media = tmp_path / 'media'
    media_tree(media, str(uuid.uuid4()))
    inside = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True,
                              backup_dir=str(media / 'trash'))
    assert inside['failed'] and 'outside the media root' in inside['msg']
    over = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True,
                            remove_orphaned_pages=True, max_changes=1)
    assert over['failed'] and 'max_changes=1' in over['msg']
    assert (media / 'temp_uploads' / 'old_scan.pdf').exists()


def media_audit(db):
    return db.query("SELECT a.action, a.resource_type, a.resource_id, a.metadata, u.username FROM core_auditlog a "
                    "LEFT JOIN auth_user u ON u.id = a.user_id WHERE a.action LIKE 'korrigo_ops.media_storage.%%' "
                    "ORDER BY a.resource_type DESC, a.resource_id")


def test_cleaning_writes_one_audit_row_per_entry_removed_or_moved(korrigo, tmp_path):
    seeded = korrigo.seed('baseline')
    media = tmp_path / 'media'
    vanished = media_tree(media, seeded['copy_ids_by_status']['READY'][0])
    before = korrigo.checksums()
    dry = korrigo.run('media_storage', check_mode=True, media_root=str(media), clean_temp_uploads=True,
                      remove_orphaned_pages=True)
    assert dry['count'] == 2 and dry['audit_rows'] == 0 and korrigo.checksums() == before  # no row in check mode

    removed = korrigo.run('media_storage', media_root=str(media), clean_temp_uploads=True)
    assert removed['count'] == 1 and removed['audit_rows'] == 1, removed
    backup = tmp_path / 'backup'
    moved = korrigo.run('media_storage', media_root=str(media), remove_orphaned_pages=True, backup_dir=str(backup))
    assert moved['count'] == 1 and moved['audit_rows'] == 1, moved
    rows = media_audit(korrigo)
    assert [(r['action'], r['resource_type'], r['resource_id'], r['username']) for r in rows] == [
        ('korrigo_ops.media_storage.remove', 'TempUpload', 'temp_uploads/old_scan.pdf', 'korrigo-ops'),
        ('korrigo_ops.media_storage.move', 'CopyPages', vanished, 'korrigo-ops')]
    temp, pages = rows[0]['metadata'], rows[1]['metadata']
    assert temp['remediation'] == 'media_storage' and temp['actor'] == 'korrigo-ops' and temp['run_by']['host']
    assert temp['before']['path'] == 'temp_uploads/old_scan.pdf' and temp['before']['size_bytes'] == 21
    assert temp['after'] == {'deleted': True}
    assert pages['after']['moved_to'].startswith(str(backup)) and pages['path'] == 'copies/pages/%s' % vanished


def test_a_concurrent_cleaning_is_skipped(korrigo_head, tmp_path):
    korrigo_head.seed('baseline')
    media = tmp_path / 'media'
    media_tree(media, str(uuid.uuid4()))
    holder = psycopg2.connect(dsn_for(korrigo_head.name))
    try:
        with holder.cursor() as cur:  # what a run of media_storage holds while it cleans
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('korrigo.ops'), hashtext('media_storage'))")
        result = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True)
        assert result.get('skipped_concurrent_run') is True and result['changed'] is False, result
        assert (media / 'temp_uploads' / 'old_scan.pdf').exists() and media_audit(korrigo_head) == []
        failing = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True, lock_wait='fail')
        assert failing['failed'] and 'advisory lock' in failing['msg']
        # Reporting only takes no lock: the diagnosis runs while a cleaning does.
        report = korrigo_head.run('media_storage', media_root=str(media))
        assert not report.get('failed') and report['temp_uploads']['old'] == ['temp_uploads/old_scan.pdf']
    finally:
        holder.rollback()
        holder.close()
    assert korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True)['audit_rows'] == 1


def test_an_unknown_remediation_user_removes_nothing(korrigo_head, tmp_path):
    korrigo_head.seed('baseline')
    media = tmp_path / 'media'
    media_tree(media, str(uuid.uuid4()))
    result = korrigo_head.run('media_storage', media_root=str(media), clean_temp_uploads=True,
                              remediation_user='nobody-here')
    assert result['failed'] and "remediation user 'nobody-here' does not exist" in result['msg']
    assert (media / 'temp_uploads' / 'old_scan.pdf').exists()
