#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: report_files
short_description: Write a run's report files into one directory, in one call
version_added: 0.3.0
description:
  - Writes every file of O(files) into O(path) (created with O(directory_mode) when missing), each atomically
    (a temporary file in the same directory, then a rename), so a reader never sees half a report.
  - The roles keep each run's report (JSON, Markdown, HTML, under a name with the run's time, plus the C(latest)
    ones) and the fleet summary with it. One module call replaces one M(ansible.builtin.copy) per file; at a
    district's fifty schools that is the difference between seconds and a minute of report writing.
  - A file name is a plain name inside O(path); a name with a directory part, C(..) or a leading dot is refused
    before anything is written.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  path:
    description:
      - Directory the files are written to.
    type: path
    required: true
  files:
    description:
      - The files, in the order they are written.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - File name inside O(path).
        type: str
        required: true
      content:
        description:
          - Its whole content (text, written as UTF-8).
        type: str
        required: true
      also_as:
        description:
          - More file names inside O(path) written with the same content (a report's C(latest) copies), so a large
            content is rendered and sent once.
        type: list
        elements: str
        default: []
  mode:
    description:
      - Permissions of every written file.
    type: raw
    default: '0640'
  directory_mode:
    description:
      - Permissions of O(path) when the module creates it.
    type: raw
    default: '0750'
attributes:
  check_mode:
    description: Writes nothing; reports which files a real run would create or change.
    support: full
  diff_mode:
    description: Returns, per file, its size and SHA-1 before and after (the reports themselves can be large).
    support: full
  idempotent:
    description: Writing the same contents again reports no change.
    support: full
seealso:
  - module: ansible.builtin.copy
'''

EXAMPLES = r'''
- name: Keep the report as JSON and Markdown
  korrigo.ops.report_files:
    path: /var/lib/korrigo-ops/reports
    files:
      - name: triage-school-1-20261202T031500Z.json
        content: "{{ korrigo_report_document | to_nice_json }}"
        also_as: [triage-school-1-latest.json]
      - name: triage-school-1-latest.md
        content: "{{ korrigo_report_document | korrigo.ops.report_markdown }}"
'''

RETURN = r'''
written:
  description: Full paths of the files created or changed (all of them in check mode would be these).
  returned: always
  type: list
  elements: str
  sample: [/var/lib/korrigo-ops/reports/triage-school-1-latest.json]
unchanged:
  description: Full paths of the files that already held this content.
  returned: always
  type: list
  elements: str
path:
  description: The directory.
  returned: always
  type: str
'''

import hashlib
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module


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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            files=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                content=dict(type='str', required=True),
                also_as=dict(type='list', elements='str', default=[]),
            )),
            mode=dict(type='raw', default='0640'),
            directory_mode=dict(type='raw', default='0750'),
        ),
        supports_check_mode=True,
    )
    run_module(module, lambda: write_reports(module))


if __name__ == '__main__':
    main()
