"""media_storage on a real media tree: disk facts, old temporary uploads, orphaned page directories."""
import os
import time
import uuid


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
