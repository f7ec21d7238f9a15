# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection to Korrigo's PostgreSQL database, shared by every module.
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host running Korrigo's PostgreSQL server.
      - Empty means the local Unix socket, as with libpq.
    type: str
    default: ''
    aliases: [ host ]
  login_port:
    description:
      - Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [ port ]
  login_db:
    description:
      - Name of Korrigo's database.
    type: str
    default: korrigo
    aliases: [ db ]
  login_user:
    description:
      - PostgreSQL role used for the session.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user).
    type: str
    default: ''
  login_unix_socket:
    description:
      - Directory of the PostgreSQL Unix domain socket.
    type: str
    default: ''
  ssl_mode:
    description:
      - How a TLS connection is negotiated; see libpq's C(sslmode).
    type: str
    default: prefer
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description:
      - File of certificate authorities used to verify the server certificate.
    type: path
    aliases: [ ssl_rootcert ]
  database_url:
    description:
      - Connection in Korrigo's C(DATABASE_URL) form, for example
        C(postgresql://korrigo:secret@db.example.org:5432/korrigo).
      - When set, it replaces O(login_host), O(login_port), O(login_db),
        O(login_user) and O(login_password).
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the database server to answer.
    type: int
    default: 10
notes:
  - The modules connect with C(application_name) set to C(korrigo.ops:<module>),
    so their sessions can be told apart (and are never terminated by this collection).
requirements:
  - psycopg2 (C(psycopg2-binary) is enough) on the host that runs the module.
'''

    # Options of every module that changes data.
    GUARDS = r'''
options:
  max_changes:
    description:
      - Largest number of rows the remediation may change in one run.
      - When more would change, the module fails and writes nothing.
    type: int
    default: 100
  remediation_user:
    description:
      - Username (C(auth_user.username)) recorded as the actor of the grading
        events and audit rows this remediation writes.
      - The user must exist in Korrigo.
    type: str
    default: korrigo-ops
  audit_ip_address:
    description:
      - Address stored in C(core_auditlog.ip_address) for the audit rows.
    type: str
    default: 127.0.0.1
  lock_wait:
    description:
      - What to do when another run of the same remediation holds its advisory lock.
      - V(skip) returns at once with RV(skipped_concurrent_run=true) and no change;
        V(fail) fails.
    type: str
    default: skip
    choices: [ skip, fail ]
notes:
  - Every change happens in one transaction. In check mode the same statements
    run and the transaction is rolled back, so the prediction is exact.
  - A PostgreSQL advisory lock per remediation serializes concurrent runs.
  - Each change writes a C(core_auditlog) row (and a grading event where Korrigo has
    one for the action) with O(remediation_user) as actor.
'''

    ATTRIBUTES_REMEDIATION = r'''
attributes:
  check_mode:
    description: Runs the remediation in a transaction that is rolled back; reports exactly what a real run would change.
    support: full
  diff_mode:
    description: Returns before and after states of every changed row.
    support: full
  idempotent:
    description: A second run against the same state reports no change.
    support: full
'''

    ATTRIBUTES_READ_ONLY = r'''
attributes:
  check_mode:
    description: Read-only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: none
  idempotent:
    description: Never changes anything.
    support: full
'''
