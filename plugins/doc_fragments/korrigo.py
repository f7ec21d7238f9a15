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
      - Password of O(login_user). Never logged.
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
      - Carries the password, so it is never logged.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the database server to answer.
    type: int
    default: 10
  lock_timeout_ms:
    description:
      - Milliseconds any statement of the session waits for a lock (PostgreSQL C(lock_timeout)), like
        Korrigo's own Django connections (5 seconds).
      - When a transaction of Korrigo holds a row the module needs (a teacher's finalize holds
        C(SELECT ... FOR UPDATE) on C(exams_copy)), the module stops waiting, rolls back (nothing is changed) and
        fails with the busy tables and the sessions holding locks on them (pid, C(application_name), state and since
        when, query start); retry later.
      - Must be positive.
    type: int
    default: 5000
    version_added: 0.3.0
  statement_timeout_ms:
    description:
      - Milliseconds one statement may run (PostgreSQL C(statement_timeout)); a statement running longer is
        cancelled, the transaction rolled back and the module fails.
      - Must be positive.
    type: int
    default: 300000
    version_added: 0.3.0
notes:
  - The modules connect with C(application_name) set to C(korrigo.ops:<module>),
    so their sessions can be told apart (and are never terminated by this collection).
  - Every session is bounded by O(lock_timeout_ms) and O(statement_timeout_ms), set as connection options.
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
      - V(skip) returns at once with C(skipped_concurrent_run=true) and no change;
        V(fail) fails.
    type: str
    default: skip
    choices: [ skip, fail ]
notes:
  - Every database change happens in one transaction. In check mode the same statements
    run and the transaction is rolled back, so the prediction is exact. What a module changes
    outside the database (files, terminated sessions) is described by that module.
  - A PostgreSQL advisory lock per remediation serializes concurrent runs.
  - Each change writes a C(core_auditlog) row (and a grading event where Korrigo has
    one for the action) with O(remediation_user) as actor.
  - Changes outside the database (files removed or moved, Celery tasks queued, workers restarted) take the same
    guard - advisory lock, O(max_changes) checked before the first action, O(remediation_user) as actor - and
    write one C(core_auditlog) row per action (C(korrigo_ops.<module>.<action>)), committed once the actions are
    done; in check mode nothing is acted on and no row is written.
'''

    # Database remediations (one transaction, rolled back in check mode). Modules that also act outside the
    # database override check_mode's description; modules whose changes are side effects outside SQL, guarded by
    # module_utils/side_effects.py (celery_health, celery_task, media_storage), declare their own attributes.
    ATTRIBUTES_REMEDIATION = r'''
attributes:
  check_mode:
    description: Runs the remediation in a transaction that is rolled back; reports exactly what a real run would change.
    support: full
  diff_mode:
    description: Returns before and after states of every changed row the result lists in C(actions).
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

    # Where Korrigo's MEDIA_ROOT is, for the modules that read or write its files.
    # The options korrigo_latency_facts and korrigo_triage_info share (module_utils/latency's spec): Korrigo's
    # Prometheus endpoint, its broker and the latency thresholds.
    METRICS = r'''
options:
  broker_url:
    description:
      - Korrigo's C(CELERY_BROKER_URL) (Redis) for the backlog. Empty skips the backlog.
      - It may carry the Redis password, so it is never logged.
    type: str
    default: ''
  latency_threshold_seconds:
    description:
      - An endpoint whose p95 exceeds this is listed in C(metrics.slow_endpoints) (the playbook's symptom is p95 > 5 s).
    type: float
    default: 5.0
  long_running_seconds:
    description:
      - An active query running longer than this is counted as long-running.
    type: int
    default: 300
  idle_in_transaction_seconds:
    description:
      - A session idle in a transaction for longer than this is counted as stale (it holds its locks).
    type: int
    default: 60
  metrics_url:
    description:
      - Korrigo's Prometheus endpoint (C(/metrics)). Empty skips the metrics.
    type: str
    default: ''
  metrics_token:
    description:
      - Korrigo's C(METRICS_TOKEN), sent as the C(X-Metrics-Token) header.
    type: str
    default: ''
  validate_certs:
    description:
      - Verify the TLS certificate of O(metrics_url).
    type: bool
    default: true
'''

    MEDIA = r'''
options:
  media_root:
    description:
      - Host path of Korrigo's C(MEDIA_ROOT) (C(/app/media) in Korrigo's containers).
      - When not set, it is found from O(compose_project) - the host side of the bind mount of C(/app/media)
        in the O(media_service) container.
      - Every path the module reads or writes is resolved (symlinks too) and refused when it lies outside.
    type: path
  compose_project:
    description:
      - docker-compose project of Korrigo, used to find the O(media_service) container by its
        C(com.docker.compose.project) / C(com.docker.compose.service) labels (Compose v1 and v2 alike).
    type: str
  media_service:
    description:
      - Compose service whose C(/app/media) mount is the media root.
    type: str
    default: backend
  docker_host:
    description:
      - Docker daemon URL (for example C(unix:///var/run/docker.sock)); default from the environment.
    type: str
'''

    # Limits of the per-file PDF check (every file is opened in its own limited child process).
    PDF_LIMITS = r'''
options:
  max_size_mb:
    description:
      - Larger files get the verdict C(too_large) without being opened (Korrigo's upload limit is 50 MB).
    type: int
    default: 50
  max_pages:
    description:
      - More pages give the verdict C(too_many_pages) (Korrigo's upload limit is 500).
    type: int
    default: 500
  timeout:
    description:
      - Seconds one file may take to open and render its first page; the child process is then killed
        and the verdict is C(timeout). Its CPU time is limited to the same.
    type: int
    default: 30
  memory_limit_mb:
    description:
      - Address space allowed to the child process checking one file; a PDF needing more gets C(too_large).
    type: int
    default: 1024
  parallel:
    description:
      - How many files are checked at the same time.
    type: int
    default: 4
'''
