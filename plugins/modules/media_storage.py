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
  - Reads the database only (which copies exist), in a read-only transaction.
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
  max_changes:
    description:
      - Most files and directories removed in one run; more fails without removing anything.
    type: int
    default: 100
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
  - korrigo.ops.korrigo.media
attributes:
  check_mode:
    description: Lists what would be removed; removes nothing.
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
'''

import os
import shutil
import time
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    KorrigoError, connect, dict_cursor, korrigo_common_argument_spec, psycopg2,
)
from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    OutsideMediaRoot, disk_usage, korrigo_media_argument_spec, media_root_from_params, resolve,
)
from ansible_collections.korrigo.ops.plugins.module_utils.remediation import check_max_changes, run_module

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


def missing_copies(params, ids):
    if not ids:
        return []
    conn = connect(params, 'korrigo.ops:media_storage')
    try:
        conn.set_session(readonly=True)
        cursor = dict_cursor(conn)
        cursor.execute(MISSING_COPIES_SQL, {'ids': ids})
        return [row['copy_id'] for row in cursor.fetchall()]
    except psycopg2.Error as err:
        raise KorrigoError("reading exams_copy failed: %s" % str(err).strip())
    finally:
        conn.rollback()
        conn.close()


def remove(root, rel, cutoff=None, backup=None):
    """Remove one temp file (its age re-checked) or orphaned page directory, or move it under ``backup``
    (keeping its relative path); False when it no longer qualifies."""
    try:
        _rel, real = resolve(root, rel)
    except OutsideMediaRoot:
        return False
    if cutoff is not None:
        if not os.path.isfile(real) or os.path.getmtime(real) >= cutoff:
            return False
    elif not os.path.isdir(real):
        return False
    if backup:
        target = os.path.join(backup, rel)
        if not os.path.isdir(os.path.dirname(target)):
            os.makedirs(os.path.dirname(target))
        shutil.move(real, target)
    elif cutoff is not None:
        os.remove(real)
    else:
        shutil.rmtree(real)
    return True


def backup_target(params, root):
    """<backup_dir>/<UTC time>/ for this run, refused inside the media root (it would be scanned again)."""
    if not params['backup_dir']:
        return None
    base = os.path.realpath(params['backup_dir'])
    if base == root or base.startswith(root + os.sep):
        raise KorrigoError("backup_dir must lie outside the media root %s" % root)
    return os.path.join(base, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()))


def storage(module):
    params = module.params
    if params['max_age_hours'] < 1:
        raise KorrigoError("max_age_hours must be at least 1")
    root = media_root_from_params(params)
    temp_count, old = old_temp_uploads(root, params['max_age_hours'])
    orphans = ['copies/pages/%s' % copy_id for copy_id in missing_copies(params, page_dir_ids(root))]
    planned = (old if params['clean_temp_uploads'] else []) + (orphans if params['remove_orphaned_pages'] else [])
    if planned:
        check_max_changes(len(planned), params['max_changes'])
    removed = []
    cutoff = time.time() - params['max_age_hours'] * 3600
    backup = backup_target(params, root)
    for rel in planned:
        if module.check_mode or remove(root, rel, cutoff if rel.startswith('temp_uploads/') else None, backup):
            removed.append(rel)
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
    if module._diff:
        result['diff'] = {'before': {'files': removed}, 'after': {'files': []}}
    return result


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_media_argument_spec())
    argument_spec.update(
        clean_temp_uploads=dict(type='bool', default=False),
        max_age_hours=dict(type='int', default=24),
        remove_orphaned_pages=dict(type='bool', default=False),
        max_changes=dict(type='int', default=100),
        list_limit=dict(type='int', default=200),
        backup_dir=dict(type='path'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: storage(module))


if __name__ == '__main__':
    main()
