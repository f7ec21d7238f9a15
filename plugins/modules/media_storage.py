#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: media_storage
short_description: Korrigo's media filesystem - free space, inodes, old temporary uploads, orphaned page directories
version_added: 0.1.0
description:
  - Reports the free space and inode use of the filesystem holding the media root (root cause "disk space
    exhausted" of the import-stuck scenario), the files of C(temp_uploads/) older than O(max_age_hours), and
    the page directories C(copies/pages/<uuid>/) of copies that no longer exist in C(exams_copy).
  - With O(clean_temp_uploads), removes those old temporary uploads, as Korrigo's C(cleanup_orphaned_files)
    task does; each file's age is checked again right before it is removed.
  - Orphaned page directories are only reported, unless O(remove_orphaned_pages) is set.
  - O(max_changes) bounds the number of files and directories removed; above it nothing is removed.
  - Only reporting (neither O(clean_temp_uploads) nor O(remove_orphaned_pages)), it reads the database (which
    copies exist) in a read-only transaction, so a read-only role (C(korrigo_ops_diagnose)) is enough.
  - Cleaning goes through the guard of every remediation - one transaction holding the advisory lock of
    C(media_storage) (a concurrent run returns C(skipped_concurrent_run)), O(remediation_user) as actor, the
    number of entries to remove checked against O(max_changes) before the first is touched - and writes one
    C(core_auditlog) row per file removed or moved (action C(korrigo_ops.media_storage.remove) or
    C(korrigo_ops.media_storage.move); resource C(TempUpload) with its relative path, or C(CopyPages) with the copy
    id; metadata with the path, its size and age before, where it went after, the remediation and who ran it).
    The rows are committed after the files are gone; when one removal fails, the rows of those already removed are
    committed and the module fails naming them.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  clean_temp_uploads:
    description:
      - Remove the files of C(temp_uploads/) older than O(max_age_hours).
    type: bool
    default: false
  max_age_hours:
    description:
      - Age (modification time) from which a temporary upload is orphaned. Korrigo uses 24 hours.
    type: int
    default: 24
  remove_orphaned_pages:
    description:
      - Remove the page directories of copies that do not exist.
    type: bool
    default: false
  backup_dir:
    description:
      - Move what is removed to C(<backup_dir>/<UTC time>/<relative path>) instead of deleting it; a temporary
        upload may be the only copy of a teacher's scan whose import failed. Must lie outside the media root.
      - Without it, files are deleted as Korrigo's own C(cleanup_orphaned_files) deletes them.
    type: path
  list_limit:
    description:
      - Most entries listed per finding; counts always cover everything.
    type: int
    default: 200
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.guards
  - korrigo.ops.korrigo.media
attributes:
  check_mode:
    description:
      - Lists what would be removed (taking the advisory lock and looking up the actor as a real run does); removes
        nothing and writes no audit row.
    support: full
  diff_mode:
    description: Lists the files and directories removed.
    support: full
  idempotent:
    description: A second run finds nothing left to remove.
    support: full
seealso:
  - module: korrigo.ops.copy_import
'''

EXAMPLES = r'''
- name: Free space, inodes, what could be cleaned
  korrigo.ops.media_storage:
    media_root: /opt/korrigo/media
    database_url: "{{ korrigo_database_url }}"

- name: Remove temporary uploads older than 24 h
  korrigo.ops.media_storage:
    compose_project: korrigo
    database_url: "{{ korrigo_database_url }}"
    clean_temp_uploads: true
'''

RETURN = r'''
disk:
  description: The media filesystem.
  returned: always
  type: dict
  sample: {path: /opt/korrigo/media, total_bytes: 107374182400, free_bytes: 53687091200, used_percent: 50.0,
           inodes_total: 6553600, inodes_free: 6000000, inodes_used_percent: 8.45}
temp_uploads:
  description: Files of temp_uploads/ - C(count), C(old) (relative paths older than O(max_age_hours)), C(max_age_hours).
  returned: always
  type: dict
orphaned_page_dirs:
  description: Page directories (relative paths) of copies absent from exams_copy.
  returned: always
  type: list
  elements: str
removed:
  description: Relative paths removed (or that would be in check mode).
  returned: always
  type: list
  elements: str
backed_up_to:
  description: Directory the removed entries were moved to (O(backup_dir)), or null.
  returned: always
  type: str
count:
  description: Number of entries in RV(removed).
  returned: always
  type: int
audit_rows:
  description: Number of C(core_auditlog) rows written (one per entry removed or moved; 0 in check mode).
  returned: when cleaning was asked
  type: int
'''

import os
import shutil
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    korrigo_common_argument_spec, korrigo_guard_argument_spec, read_only_session,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    OutsideMediaRoot, disk_usage, korrigo_media_argument_spec, media_root_from_params, resolve,
)
from ansible_collections.korrigo.ops.plugins.module_utils.side_effects import SideEffects

MISSING_COPIES_SQL = """
SELECT d::text AS copy_id FROM unnest(%(ids)s::uuid[]) AS d
 WHERE NOT EXISTS (SELECT 1 FROM exams_copy c WHERE c.id = d) ORDER BY 1
"""


def old_temp_uploads(root, max_age_hours):
    temp = os.path.join(root, 'temp_uploads')
    if not os.path.isdir(temp):
        return 0, []
    cutoff = time.time() - max_age_hours * 3600
    names = sorted(os.listdir(temp))
    old = []
    for name in names:
        path = os.path.join(temp, name)
        if os.path.isfile(path) and not os.path.islink(path) and os.path.getmtime(path) < cutoff:
            old.append('temp_uploads/%s' % name)
    return len(names), old


def page_dir_ids(root):
    pages = os.path.join(root, 'copies', 'pages')
    if not os.path.isdir(pages):
        return []
    ids = []
    for name in sorted(os.listdir(pages)):
        try:
            if os.path.isdir(os.path.join(pages, name)) and str(uuid.UUID(name)) == name:
                ids.append(name)
        except ValueError:
            continue  # scratch directories and anything else that is not a copy's
    return ids


def missing_copies(params, ids, guard=None):
    """Copy ids of page directories absent from exams_copy; read under the guard's lock when cleaning."""
    if not ids:
        return []
    if guard is not None:
        return [row['copy_id'] for row in guard.fetchall(MISSING_COPIES_SQL, {'ids': ids})]
    with read_only_session(params, 'korrigo.ops:media_storage', 'reading exams_copy failed',
                           tables=('exams_copy',)) as (cursor, _rules):
        cursor.execute(MISSING_COPIES_SQL, {'ids': ids})
        return [row['copy_id'] for row in cursor.fetchall()]


def entry_state(real):
    """What an entry is before it is removed: size (bytes) and modification time, for its audit row."""
    try:
        st = os.lstat(real)
    except OSError:
        return None
    size = st.st_size
    if os.path.isdir(real):
        size = 0
        for base, _dirs, files in os.walk(real):
            for name in files:
                try:
                    size += os.lstat(os.path.join(base, name)).st_size
                except OSError:
                    pass
    return {'size_bytes': size, 'mtime': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(st.st_mtime))}


def qualifies(root, rel, cutoff=None):
    """The real path of a temp file still older than ``cutoff`` or of an orphaned page directory, else None."""
    try:
        _rel, real = resolve(root, rel)
    except OutsideMediaRoot:
        return None
    if cutoff is not None:
        if not os.path.isfile(real) or os.path.islink(real) or os.path.getmtime(real) >= cutoff:
            return None
    elif not os.path.isdir(real) or os.path.islink(real):
        return None
    return real


def remove(root, rel, cutoff=None, backup=None):
    """Remove one temp file (its age re-checked) or orphaned page directory, or move it under ``backup``
    (keeping its relative path). Returns what was done (for the audit row), or None when it no longer qualifies."""
    real = qualifies(root, rel, cutoff)
    if real is None:
        return None
    if backup:
        target = os.path.join(backup, rel)
        if not os.path.isdir(os.path.dirname(target)):
            os.makedirs(os.path.dirname(target))
        shutil.move(real, target)
        return {'moved_to': target}
    if cutoff is not None:
        os.remove(real)
    else:
        shutil.rmtree(real)
    return {'deleted': True}


def backup_target(params, root):
    """<backup_dir>/<UTC time>/ for this run, refused inside the media root (it would be scanned again)."""
    if not params['backup_dir']:
        return None
    base = os.path.realpath(params['backup_dir'])
    if base == root or base.startswith(root + os.sep):
        raise KorrigoError("backup_dir must lie outside the media root %s" % root)
    return os.path.join(base, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))


def clean(module, root, old, page_ids, backup):
    """Remove (or move) what is asked under the guard: lock, max_changes, one audit row per entry."""
    params = module.params
    cutoff = time.time() - params['max_age_hours'] * 3600
    removed = []
    tables = ('exams_copy', 'core_auditlog', 'auth_user')
    with SideEffects(params, 'media_storage', module.check_mode, tables=tables) as guard:
        orphans = ['copies/pages/%s' % copy_id for copy_id in missing_copies(params, page_ids, guard)]
        planned = (old if params['clean_temp_uploads'] else []) + (orphans if params['remove_orphaned_pages'] else [])
        guard.plan(len(planned))
        verb = 'move' if backup else 'remove'
        for rel in planned:
            temp = rel.startswith('temp_uploads/')
            real = qualifies(root, rel, cutoff if temp else None)
            if real is None:
                continue
            before = dict(entry_state(real) or {}, path=rel)
            record = guard.perform(
                'korrigo_ops.media_storage.%s' % verb, 'TempUpload' if temp else 'CopyPages',
                rel if temp else rel.rsplit('/', 1)[-1],
                lambda rel=rel, temp=temp: remove(root, rel, cutoff if temp else None, backup),
                before=before, metadata={'path': rel, 'media_root': root, 'backup_dir': backup,
                                         'max_age_hours': params['max_age_hours'] if temp else None})
            if record is not None:
                removed.append(rel)
    return orphans, removed, guard.result()


def storage(module):
    params = module.params
    if params['max_age_hours'] < 1:
        raise KorrigoError("max_age_hours must be at least 1")
    root = media_root_from_params(params)
    temp_count, old = old_temp_uploads(root, params['max_age_hours'])
    backup = backup_target(params, root)
    guard = None
    if params['clean_temp_uploads'] or params['remove_orphaned_pages']:
        orphans, removed, guard = clean(module, root, old, page_dir_ids(root), backup)
    else:
        orphans, removed = ['copies/pages/%s' % copy_id for copy_id in missing_copies(params, page_dir_ids(root))], []
    limit = params['list_limit']
    result = {
        'changed': bool(removed),
        'count': len(removed),
        'removed': removed[:limit],
        'disk': disk_usage(root),
        'temp_uploads': {'count': temp_count, 'old': old[:limit], 'old_count': len(old),
                         'max_age_hours': params['max_age_hours']},
        'orphaned_page_dirs': orphans[:limit],
        'media_root': root,
        'backed_up_to': backup if removed else None,
        'check_mode': module.check_mode,
    }
    if guard is not None:
        result.update(guard)
    if module._diff:
        result['diff'] = {'before': {'files': removed}, 'after': {'files': []}}
    return result


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_guard_argument_spec())
    argument_spec.update(korrigo_media_argument_spec())
    argument_spec.update(
        clean_temp_uploads=dict(type='bool', default=False),
        max_age_hours=dict(type='int', default=24),
        remove_orphaned_pages=dict(type='bool', default=False),
        list_limit=dict(type='int', default=200),
        backup_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: storage(module))


if __name__ == '__main__':
    main()
