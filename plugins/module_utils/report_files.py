# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a run's report files: the report_files module and its action plugin's in-process path share it.

``module`` below is anything with ``params``, ``check_mode``, ``_diff``, ``atomic_move(src, dest)`` and
``set_mode_if_different(path, mode, changed)``: an AnsibleModule, or the action plugin's writer on the controller.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

ARGUMENT_SPEC = dict(
    path=dict(type='path', required=True),
    files=dict(type='list', elements='dict', required=True, options=dict(
        name=dict(type='str', required=True),
        content=dict(type='str', required=True),
        also_as=dict(type='list', elements='str', default=[]),
    )),
    mode=dict(type='raw', default='0640'),
    directory_mode=dict(type='raw', default='0750'),
)

# The run_report action's options (the module file only documents them).
RUN_REPORT_ARGUMENT_SPEC = dict(
    report=dict(type='dict', required=True),
    host=dict(type='str'),
    started=dict(type='str'),
    versions=dict(type='dict', default={}),
    report_dir=dict(type='str', default=''),
    stats=dict(type='bool', default=True),
    stats_details=dict(type='bool', default=True),
    summaries=dict(type='dict', default={}),
)


def planned_files(files):
    """[(name, bytes)] of every file, ``also_as`` names included, in order; refused (before anything is written)
    unless each name is a plain file name inside the directory, and each is written once."""
    planned = []
    for entry in files:
        data = to_bytes(entry['content'], errors='surrogate_or_strict')
        for name in [entry['name']] + list(entry.get('also_as') or []):
            if not name or name != os.path.basename(name) or name in ('.', '..') or name.startswith('.'):
                raise KorrigoError("report file name %r is not a plain file name inside the report directory" % name)
            planned.append((name, data))
    names = [name for name, _data in planned]
    repeated = sorted(n for n in set(names) if names.count(n) > 1)
    if repeated:
        raise KorrigoError('report file names repeat: %s' % ', '.join(repeated))
    return planned


def state_of(path):
    """{size, sha1} of the file at ``path``, or None when there is none."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError):
        return None
    return {'size': len(data), 'sha1': hashlib.sha1(data).hexdigest()}


def write_atomically(module, directory, name, data, mode):
    """A temporary file in the same directory, then AnsibleModule.atomic_move (rename, SELinux context kept)."""
    dest = os.path.join(directory, name)
    handle, temporary = tempfile.mkstemp(prefix='.%s.' % name, dir=directory)
    try:
        with os.fdopen(handle, 'wb') as out:
            out.write(data)
    except (IOError, OSError) as err:
        os.unlink(temporary)
        raise KorrigoError('cannot write %s: %s' % (dest, err))
    module.atomic_move(temporary, dest)
    module.set_mode_if_different(dest, mode, False)


def write_reports(module):
    params = module.params
    directory = params['path']
    planned = planned_files(params['files'])
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise KorrigoError('%s exists and is not a directory' % directory)
    to_write, unchanged, before, after = [], [], {}, {}
    for name, data in planned:
        full = os.path.join(directory, name)
        old = state_of(full)
        new = {'size': len(data), 'sha1': hashlib.sha1(data).hexdigest()}
        if old == new:
            unchanged.append(full)
            continue
        to_write.append((name, data))
        before[name], after[name] = old or 'absent', new
    if to_write and not module.check_mode:
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory)
            except OSError as err:
                raise KorrigoError('cannot create the report directory %s: %s' % (directory, err))
            module.set_mode_if_different(directory, params['directory_mode'], False)
        for name, data in to_write:
            write_atomically(module, directory, name, data, params['mode'])
    written = [os.path.join(directory, name) for name, _data in to_write]
    result = dict(changed=bool(written), written=written, unchanged=unchanged, path=directory)
    if module._diff:
        result['diff'] = {'before': before, 'after': after}
    return result
