#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: korrigo_facts
short_description: Diagnose a Korrigo database as data
version_added: 0.1.0
description:
  - Sets C(ansible_facts.korrigo) from a few set-based, read-only queries on Korrigo's real schema
    (copies by status, stuck imports, failed finalizations, copy locks, out-of-bounds annotations and the
    Korrigo version detected from the schema).
  - Ages come from the columns Korrigo really has. A STAGING copy's age is its C(IMPORT) event
    C(timestamp) (C(exams_copy) has no C(created_at)); a lock's age is C(locked_at).
  - Runs in a read-only transaction, so a read-only database role is enough. Never changes anything.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  gather_subset:
    description:
      - Parts to gather. C(version) is always gathered.
      - C(audit) is M(korrigo.ops.audit_trail)'s whole-database check of the audit trail (its gaps, without the
        repeat counts), read on a second connection in the same snapshot while the other parts are read. It reads
        every grading event (seconds on a district), so C(all) leaves it out; when it fails, C(audit) holds only
        C(msg) and the other parts are still returned.
    type: list
    elements: str
    default: [ all ]
    choices: [ all, copies, stuck_imports, finalizations, locks, annotations, version, audit ]
  stuck_after_minutes:
    description:
      - A STAGING copy without pages is stuck once its IMPORT event is older than this.
      - Copies without any IMPORT event are reported as stuck with an unknown age.
    type: int
    default: 5
  lock_age_minutes:
    description:
      - Locks whose C(locked_at) is older than this are counted as old (likely abandoned, even if renewed).
    type: int
    default: 60
  stale_after_minutes:
    description:
      - A GRADING_IN_PROGRESS copy whose latest grading event is older than this is reported as stale
        (its worker died inside finalize).
    type: int
    default: 30
  remediation_user:
    description:
      - Also report the C(auth_user) id of this username (the actor remediations record), or null when absent.
    type: str
  watch_copy_ids:
    description:
      - Also report status, retries and error of these copies under C(watched) (to follow a remediation).
    type: list
    elements: str
    default: []
  list_limit:
    description:
      - Most rows listed per finding; counts always cover every row.
    type: int
    default: 200
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.attributes_read_only
seealso:
  - module: korrigo.ops.copylock
'''

EXAMPLES = r'''
- name: Gather every Korrigo fact
  korrigo.ops.korrigo_facts:
    login_host: 127.0.0.1
    login_port: 55432
    login_user: korrigo
    login_password: "{{ korrigo_db_password }}"

- name: Only locks, with a 2 hour age threshold
  korrigo.ops.korrigo_facts:
    database_url: "{{ korrigo_database_url }}"
    gather_subset: [locks]
    lock_age_minutes: 120

- name: Show expired locks
  ansible.builtin.debug:
    var: ansible_facts.korrigo.locks.expired
'''

RETURN = r'''
ansible_facts:
  description: Facts under the C(korrigo) key.
  returned: always
  type: dict
  contains:
    korrigo:
      description: The diagnosis.
      type: dict
      returned: always
      sample:
        version: {name: head, lock_workflow: false, finalize_accepts: [READY, GRADING_FAILED]}
        copies_by_status: {STAGING: 1, READY: 3, LOCKED: 7, GRADING_IN_PROGRESS: 0, GRADING_FAILED: 0, GRADED: 2}
        locks: {total: 7, active: 2, expired: 5, older_than_threshold: 1, locked_without_valid_lock: 5}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.database import korrigo_common_argument_spec
from ansible_collections.korrigo.ops.plugins.module_utils.errors import run_module
from ansible_collections.korrigo.ops.plugins.module_utils.facts import FACTS_ARGUMENT_SPEC, korrigo_facts


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(FACTS_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: {'changed': False, 'ansible_facts': {'korrigo': korrigo_facts(module.params)}})


if __name__ == '__main__':
    main()
