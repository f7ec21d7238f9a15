#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: pdf_check
short_description: Give a verdict on Korrigo PDFs and page images under the media root before anything uses them
version_added: 0.1.0
description:
  - For each path (relative to the media root, as C(exams_copy.pdf_source) stores it, or absolute) returns one
    verdict - C(ok), C(missing), C(empty), C(corrupted), C(encrypted), C(too_large), C(too_many_pages),
    C(timeout) - or C(refused) for a path that resolves (symlinks too) outside the media root, which is never opened.
  - A file is C(ok) when it exists, is not empty, is within O(max_size_mb), opens in PyMuPDF without MuPDF
    having to repair it, needs no password, has between 1 and O(max_pages) pages and its first page renders at
    Korrigo's import resolution (C(Matrix(2.0, 2.0))).
  - With O(kind=image) the files are page images (the booklets' C(pages_images), which Korrigo's finalize
    flattens into the final PDF; it never reads C(pdf_source)). An image is C(ok) when it exists, is not empty, is
    within O(max_size_mb), opens as an image (not a PDF) and converts to a PDF page as Korrigo's C(PDFFlattener)
    does; otherwise C(missing), C(empty), C(corrupted), C(too_large), C(timeout) or C(refused).
  - Files are opened in O(parallel) long-lived child processes, one file after the other, each file limited in
    time (O(timeout), wall clock) and each child in memory (O(memory_limit_mb)), so a PDF that makes MuPDF hang or
    eat memory is killed and gets C(timeout) or C(too_large). A file a child dies on is opened once more in a child
    of its own, so its verdict is the one it gets alone. Children are replaced every 200 files.
  - Never changes anything.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  paths:
    description:
      - Files to check. Relative paths are taken from the media root.
    type: list
    elements: str
    required: true
  kind:
    description:
      - What the files are - V(pdf) (uploaded or imported PDFs) or V(image) (page images of booklets).
    type: str
    default: pdf
    choices: [ pdf, image ]
    version_added: 0.3.0
extends_documentation_fragment:
  - korrigo.ops.korrigo.media
  - korrigo.ops.korrigo.pdf_limits
  - korrigo.ops.korrigo.attributes_read_only
requirements:
  - PyMuPDF (C(pymupdf), or Debian's C(python3-fitz)) for the Python running the module.
  - The Docker SDK (C(docker)) only to find the media root from O(compose_project).
seealso:
  - module: korrigo.ops.copy_import
'''

EXAMPLES = r'''
- name: Check the source PDFs of the stuck copies
  korrigo.ops.pdf_check:
    compose_project: korrigo
    paths: "{{ ansible_facts.korrigo.stuck_imports.stuck | map(attribute='pdf_source') | list }}"
  register: verdicts

- name: Check the page images a failed copy's finalize will flatten
  korrigo.ops.pdf_check:
    media_root: /srv/korrigo/media
    kind: image
    paths: "{{ failed_copy.pages_images }}"
  register: page_verdicts

- name: Copies whose PDF must be uploaded again
  ansible.builtin.debug:
    msg: "{{ verdicts.files | rejectattr('verdict', 'equalto', 'ok') | map(attribute='path') | list }}"
'''

RETURN = r'''
files:
  description: One entry per path, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - path: copies/source/copy_0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e.pdf
      realpath: /opt/korrigo/media/copies/source/copy_0b8f3c52-5e1e-4f57-8a55-5d0c2a8b1f3e.pdf
      verdict: corrupted
      detail: "FileDataError: cannot open broken document"
      size: 8201
      pages: null
summary:
  description: Number of files per verdict.
  returned: always
  type: dict
  sample: {ok: 2, missing: 1, empty: 0, corrupted: 1, encrypted: 1, too_large: 0, too_many_pages: 0, timeout: 0, refused: 0}
all_ok:
  description: True when every file got the verdict C(ok).
  returned: always
  type: bool
media_root:
  description: The media root used (real path).
  returned: always
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    korrigo_media_argument_spec, media_root_from_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.pdf import (
    FILE_KINDS, check_files, limits_from_params, pdf_limits_argument_spec, summarize,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import run_module


def check(module):
    params = module.params
    limits = limits_from_params(params)
    root = media_root_from_params(params)
    files = check_files(root, params['paths'], limits, params['parallel'], kind=params['kind'], batched=True)
    summary = summarize(files)
    return {'changed': False, 'files': files, 'summary': summary, 'media_root': root,
            'all_ok': summary['ok'] == len(files)}


def main():
    argument_spec = korrigo_media_argument_spec()
    argument_spec.update(pdf_limits_argument_spec())
    argument_spec.update(paths=dict(type='list', elements='str', required=True),
                         kind=dict(type='str', default='pdf', choices=list(FILE_KINDS)))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: check(module))


if __name__ == '__main__':
    main()
