#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: korrigo_log_facts
short_description: Recent errors of Korrigo's JSON log, grouped by signature, and the request error rate
version_added: 0.2.0
description:
  - Reads the end of Korrigo's C(django.log) (JSON lines with C(timestamp), C(level), C(logger), C(message) and,
    for requests, C(request_id), C(path), C(status_code), C(duration_ms)) and sets C(ansible_facts.korrigo_log).
  - Errors (O(levels)) of the last O(window_minutes) are grouped by signature - level, logger and the message with
    UUIDs, hexadecimal ids and numbers replaced by placeholders, plus the exception's class when there is one -
    with their count, first and last time and one sample message.
  - Requests of the window (log lines with a C(status_code), counted once per C(request_id)) give the share of
    5xx answers (the playbook's P1 rule is an error rate over 10 %) and the number of slow ones.
  - Read-only. A missing log file is reported (C(exists=false)), not a failure.
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  path:
    description:
      - Korrigo's JSON log on the managed host (C(backend/logs/django.log) of the deployment).
    type: path
    required: true
  window_minutes:
    description:
      - Only entries of the last this many minutes count. Timestamps are UTC, as Korrigo writes them.
    type: int
    default: 60
  levels:
    description:
      - Levels counted as errors.
    type: list
    elements: str
    default: [ ERROR, CRITICAL ]
  slow_request_ms:
    description:
      - A request whose C(duration_ms) exceeds this is counted as slow.
    type: int
    default: 5000
  max_bytes:
    description:
      - Bytes read from the end of the file (a rotating log can be large; older lines are outside any window anyway).
    type: int
    default: 52428800
  list_limit:
    description:
      - Most signatures listed, most frequent first.
    type: int
    default: 20
extends_documentation_fragment:
  - korrigo.ops.korrigo.attributes_read_only
seealso:
  - module: korrigo.ops.korrigo_latency_facts
'''

EXAMPLES = r'''
- name: Errors of the last 30 minutes
  korrigo.ops.korrigo_log_facts:
    path: /opt/korrigo/backend/logs/django.log
    window_minutes: 30

- name: Show the most frequent error
  ansible.builtin.debug:
    var: ansible_facts.korrigo_log.signatures[0]
'''

RETURN = r'''
ansible_facts:
  description: Facts under the C(korrigo_log) key.
  returned: always
  type: dict
  contains:
    korrigo_log:
      description: The log's recent errors and requests.
      type: dict
      returned: always
      sample:
        exists: true
        window_minutes: 60
        errors_total: 4
        signatures:
          - {signature: "ERROR grading.services: PDF generation failed for copy <uuid> (attempt <n>)",
             level: ERROR, logger: grading.services, count: 3, first_seen: "2026-11-30 00:41:02,118",
             last_seen: "2026-11-30 00:52:40,007", sample: "PDF generation failed for copy 0b8f... (attempt 3)"}
        requests: {total: 412, errors_5xx: 3, error_rate: 0.0073, slow: 2}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.errors import run_module
from ansible_collections.korrigo.ops.plugins.module_utils.logs import LOG_ARGUMENT_SPEC, log_facts


def main():
    module = AnsibleModule(argument_spec=LOG_ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, lambda: {'changed': False, 'ansible_facts': {'korrigo_log': log_facts(module.params)}})


if __name__ == '__main__':
    main()
