#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: copy_dossier
short_description: Everything about one Korrigo copy, and what each remediation would do with it
version_added: 0.3.0
description:
  - Read-only. Given copies by id or by anonymous id, returns one dossier each - the copy (status, retries, error
    message, validated/graded/locked times and who, how it came into being), its files (booklets and every page
    image - exists, size, opens -, C(pdf_source), C(final_pdf), each confined to the media root), its grading-event
    timeline and its C(core_auditlog) rows (remediations included), its lock, its annotations (count, out of
    bounds), the Celery tasks queued or running for it (with O(broker_url)) and the recent log lines naming it
    (with O(log_file)).
  - A verdict per scenario, computed by the rules the remediations use (C(plugins/module_utils/copy_rules.py),
    C(creation.py) and the audit-trail rules) - stuck import or not and why, repairable finalization or what needs
    a human and why, expired lock, audit gaps by the creation-path rules - and the exact playbook and variables
    that would fix each.
  - An id that matches no copy is listed in RV(unknown); an anonymous id (or the beginning of one) that matches
    several copies lists them in RV(ambiguous) and gets no dossier; a malformed id is refused before connecting.
  - One copy costs indexed lookups only (primary key, the unique anonymous id, the C(copy_id) indexes).
author:
  - korrigo.ops maintainers (!UNKNOWN)
options:
  copies:
    description:
      - Copy UUIDs or anonymous ids (C(IMPORT-1A2B3C4D), C(4F2A-012), ...; case does not matter; the beginning of an
        anonymous id is enough when it matches one copy).
    type: list
    elements: str
    required: true
  broker_url:
    description:
      - Celery broker (C(CELERY_BROKER_URL)), to list the tasks queued or reserved for the copy. Unset, the broker is
        not asked.
    type: str
  log_file:
    description:
      - Korrigo's JSON log on the host running the module; the last lines naming the copy are listed.
    type: path
  log_lines:
    description:
      - Most log lines listed per copy.
    type: int
    default: 20
  log_max_bytes:
    description:
      - How much of the end of O(log_file) is read.
    type: int
    default: 4194304
  events_limit:
    description:
      - Most grading events and audit rows listed per copy (the newest); counts cover all.
    type: int
    default: 200
  stuck_after_minutes:
    description:
      - As M(korrigo.ops.copy_import) - a copy without pages that arrived more recently is not stuck yet.
    type: int
    default: 5
  stale_after_minutes:
    description:
      - As M(korrigo.ops.copy_status) - a GRADING_IN_PROGRESS copy idle longer than this had its worker die.
    type: int
    default: 30
extends_documentation_fragment:
  - korrigo.ops.korrigo
  - korrigo.ops.korrigo.media
  - korrigo.ops.korrigo.pdf_limits
  - korrigo.ops.korrigo.attributes_read_only
requirements:
  - psycopg2; PyMuPDF for the file checks; redis with O(broker_url).
seealso:
  - module: korrigo.ops.korrigo_facts
  - module: korrigo.ops.pdf_check
'''

EXAMPLES = r'''
- name: What is wrong with this copy, and what would fix it
  korrigo.ops.copy_dossier:
    login_host: 127.0.0.1
    login_db: korrigo
    login_user: korrigo_ops_diagnose
    login_password: "{{ vault_korrigo_diagnose_password }}"
    media_root: /srv/korrigo/media
    broker_url: "{{ korrigo_broker_url }}"
    log_file: /srv/korrigo/backend/logs/django.log
    copies: [IMPORT-1A2B3C4D]
  register: dossier

- name: The playbooks that would fix it
  ansible.builtin.debug:
    msg: "{{ dossier.dossiers[0].fixes }}"
'''

RETURN = r'''
dossiers:
  description: One dossier per copy found, in the order asked.
  returned: success
  type: list
  elements: dict
  contains:
    copy:
      description: The copy's row (status, retries, error message, times and who), its exam and C(creation_path).
      type: dict
    files:
      description: C(booklets) (each with its page images and their verdicts), C(pdf_source) and C(final_pdf) verdicts.
      type: dict
    timeline:
      description: Grading events, oldest first - C(time), C(action), C(actor), and the metadata that matters.
      type: list
    audit_log:
      description: The C(core_auditlog) rows about the copy (remediations included), oldest first.
      type: list
    lock:
      description: Its lock (C(owner), C(locked_at), C(expires_at), C(expired)), or null.
      type: dict
    annotations:
      description: C(count) and C(out_of_bounds).
      type: dict
    tasks:
      description: Celery tasks queued or reserved for the copy, or C(reachable=false) and the error.
      type: dict
    log_lines:
      description: The last log lines naming the copy (id or anonymous id).
      type: list
    verdicts:
      description: C(import_stuck), C(finalization), C(lock), C(audit) - each with C(verdict), C(why) and, when a
        remediation applies, C(fix) (C(playbook), C(extra_vars)).
      type: dict
    fixes:
      description: The playbooks (installed names) and variables that would fix what the verdicts found.
      type: list
unknown:
  description: Ids that match no copy.
  returned: success
  type: list
  elements: str
ambiguous:
  description: Anonymous ids (or beginnings) that match several copies, with the copies they match.
  returned: success
  type: list
  elements: dict
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.korrigo.ops.plugins.module_utils.copy_rules import (
    PAGES_IMAGES_SQL, finalizations_ctes, finalize_failed_sql, is_repairable, pages_verdict, stuck_imports_ctes,
)
from ansible_collections.korrigo.ops.plugins.module_utils.audit_rules import copy_gaps
from ansible_collections.korrigo.ops.plugins.module_utils.creation import CREATION_PATH_SQL
from ansible_collections.korrigo.ops.plugins.module_utils.database import (
    jsonable, korrigo_common_argument_spec, read_only_session,
)
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError, run_module
from ansible_collections.korrigo.ops.plugins.module_utils.logs import lines_naming
from ansible_collections.korrigo.ops.plugins.module_utils.media import (
    korrigo_media_argument_spec, media_root_from_params,
)
from ansible_collections.korrigo.ops.plugins.module_utils.pdf import (
    check_files, limits_from_params, pdf_limits_argument_spec,
)

UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')
# Korrigo's anonymous ids: IMPORT-XXXXXXXX (import), XXXX-NNN / XXXX-XXXXXX (HEAD uploads), XXXXXXXX (8f16b75).
ANONYMOUS_RE = re.compile(r'^[A-Z0-9]+(-[A-Z0-9]+)*-?$')

EXACT_SQL = """
SELECT c.id::text AS query, c.id::text AS copy_id, c.anonymous_id FROM exams_copy c WHERE c.id = ANY(%(uuids)s::uuid[])
UNION ALL
SELECT c.anonymous_id, c.id::text, c.anonymous_id FROM exams_copy c WHERE c.anonymous_id = ANY(%(anonymous)s::text[])
"""
# The beginning of an anonymous id: a constant prefix (parse_ids allows only [A-Z0-9-]: no LIKE wildcard), so the
# anonymous_id varchar_pattern_ops index serves it.
PREFIX_SQL = """
SELECT %(query)s::text AS query, c.id::text AS copy_id, c.anonymous_id FROM exams_copy c
 WHERE c.anonymous_id LIKE %(pattern)s ORDER BY c.anonymous_id LIMIT 11
"""

DOSSIER_SQL = """
WITH @STUCK@, @FINAL@
SELECT c.id AS copy_id, c.anonymous_id, c.status, c.grading_retries, c.grading_error_message, c.is_identified,
       c.validated_at, c.graded_at, c.locked_at, c.assigned_at, c.pdf_source, c.final_pdf,
       c.exam_id, e.name AS exam_name, @CREATION_PATH@ AS creation_path,
       (SELECT username FROM auth_user u WHERE u.id = c.locked_by_id) AS locked_by,
       (SELECT username FROM auth_user u WHERE u.id = c.assigned_corrector_id) AS assigned_corrector,
       (SELECT u.username FROM grading_gradingevent v JOIN auth_user u ON u.id = v.actor_id
         WHERE v.copy_id = c.id AND v.action = 'VALIDATE' ORDER BY v."timestamp" DESC LIMIT 1) AS validated_by,
       (SELECT u.username FROM grading_gradingevent v JOIN auth_user u ON u.id = v.actor_id
         WHERE v.copy_id = c.id AND v.action = 'FINALIZE'
           AND NOT coalesce(@V_FAILED@, false) ORDER BY v."timestamp" DESC LIMIT 1) AS graded_by,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('booklet_id', b.id, 'start_page', b.start_page,
                                                     'end_page', b.end_page, 'pages_images', b.pages_images)
                                  ORDER BY b.start_page), '[]')
          FROM exams_copy_booklets cb JOIN exams_booklet b ON b.id = cb.booklet_id WHERE cb.copy_id = c.id) AS booklets,
       @PAGES_IMAGES@ AS pages_images,
       (SELECT count(*) FROM grading_gradingevent ev WHERE ev.copy_id = c.id) AS events_total,
       (SELECT coalesce(jsonb_agg(t ORDER BY t.time), '[]') FROM (
            SELECT ev."timestamp" AS time, ev.action, u.username AS actor,
                   ev.metadata - 'annotation_id' AS metadata
              FROM grading_gradingevent ev JOIN auth_user u ON u.id = ev.actor_id
             WHERE ev.copy_id = c.id ORDER BY ev."timestamp" DESC LIMIT %(events_limit)s) t) AS timeline,
       (SELECT coalesce(jsonb_agg(t ORDER BY t.time), '[]') FROM (
            SELECT a."timestamp" AS time, a.action, u.username AS actor, a.metadata
              FROM core_auditlog a LEFT JOIN auth_user u ON u.id = a.user_id
             WHERE a.resource_type = 'Copy' AND a.resource_id = c.id::text
             ORDER BY a."timestamp" DESC LIMIT %(events_limit)s) t) AS audit_log,
       (SELECT jsonb_build_object('owner', u.username, 'locked_at', l.locked_at, 'expires_at', l.expires_at,
                                  'expired', l.expires_at < now(), 'token_prefix', left(l.token::text, 8))
          FROM grading_copylock l JOIN auth_user u ON u.id = l.owner_id WHERE l.copy_id = c.id) AS lock,
       (SELECT jsonb_build_object('count', count(*), 'out_of_bounds',
                                  count(*) FILTER (WHERE a.x < 0 OR a.y < 0 OR a.w < 0 OR a.h < 0 OR a.x + a.w > 1
                                                   OR a.y + a.h > 1 OR 'NaN'::float8 IN (a.x, a.y, a.w, a.h)))
          FROM grading_annotation a WHERE a.copy_id = c.id) AS annotations,
       (SELECT to_jsonb(s) FROM staging s WHERE s.copy_id = c.id) AS staging,
       (SELECT to_jsonb(s) FROM stuck s WHERE s.copy_id = c.id) AS stuck,
       (SELECT to_jsonb(d) - 'pages_images' FROM decided d WHERE d.copy_id = c.id) AS finalization
  FROM exams_copy c JOIN exams_exam e ON e.id = c.exam_id
 WHERE c.id = ANY(%(only_copy_ids)s::uuid[])
"""


def dossier_statement(rules):
    """The one statement that reads every dossier (constants only; no input in the text)."""
    return (DOSSIER_SQL.replace('@STUCK@', stuck_imports_ctes(rules)).replace('@FINAL@', finalizations_ctes())
            .replace('@CREATION_PATH@', CREATION_PATH_SQL).replace('@PAGES_IMAGES@', PAGES_IMAGES_SQL)
            .replace('@V_FAILED@', finalize_failed_sql('v')))


def parse_ids(values):
    """(uuids, anonymous ids, both in the order asked) of the asked copies; a malformed id is refused before
    anything connects."""
    uuids, anonymous, ordered = [], [], []
    for raw in values:
        value = (raw or '').strip()
        if UUID_RE.match(value):
            hexa = value.replace('-', '').lower()
            uuids.append('%s-%s-%s-%s-%s' % (hexa[:8], hexa[8:12], hexa[12:16], hexa[16:20], hexa[20:]))
            ordered.append(uuids[-1])
        elif 2 <= len(value) <= 50 and ANONYMOUS_RE.match(value.upper()):
            anonymous.append(value.upper())
            ordered.append(anonymous[-1])
        else:
            raise KorrigoError("malformed copy id %r: give a copy UUID or an anonymous id (letters, digits and "
                               "dashes, e.g. IMPORT-1A2B3C4D or 4F2A-012); nothing was read" % raw)
    if not ordered:
        raise KorrigoError("empty selector: list at least one copy (copies)")
    return uuids, anonymous, ordered


def check_copy_files(root, row, limits, parallel):
    """Verdicts on the files of one copy: page images (as finalize opens them), pdf_source, final_pdf."""
    images = list(row['pages_images'] or [])
    image_verdicts = check_files(root, images, limits, parallel, kind='image') if images else []
    by_path = dict(zip(images, image_verdicts))
    booklets = []
    for booklet in row['booklets'] or []:
        pages = [dict(by_path.get(p) or {'path': p}, path=p) for p in booklet.get('pages_images') or []]
        booklets.append(dict(booklet, pages=[dict((k, page.get(k)) for k in ('path', 'verdict', 'detail', 'size'))
                                             for page in pages]))
    files = {'media_root': root, 'booklets': booklets, 'pdf_source': None, 'final_pdf': None}
    for key in ('pdf_source', 'final_pdf'):
        if row[key]:
            checked = check_files(root, [row[key]], limits, 1, kind='pdf')[0]
            files[key] = dict((k, checked.get(k)) for k in ('path', 'verdict', 'detail', 'size', 'pages'))
    verdict, problems = pages_verdict(images, image_verdicts)
    return files, verdict, problems


def queued_tasks(broker_url, copy_ids):
    """Celery task messages waiting or reserved that name each copy, or the broker's error."""
    if not broker_url:
        return dict((c, {'asked': False}) for c in copy_ids)
    from ansible_collections.korrigo.ops.plugins.module_utils.broker import broker_client, pending_tasks
    try:
        client = broker_client(broker_url)
        messages = pending_tasks(client)
    except KorrigoError as err:
        return dict((c, {'asked': True, 'reachable': False, 'error': err.msg}) for c in copy_ids)
    out = {}
    for copy_id in copy_ids:
        named = [{'task': task, 'args': args} for task, args, kwargs in messages
                 if copy_id in [str(a) for a in args] or copy_id in [str(v) for v in (kwargs or {}).values()]]
        out[copy_id] = {'asked': True, 'reachable': True, 'tasks': named}
    return out


def fix(playbook, why, **extra_vars):
    return {'playbook': playbook, 'why': why, 'extra_vars': extra_vars}


def import_verdict(row, files, params):
    if row['status'] != 'STAGING':
        return {'verdict': 'not_staging', 'why': 'status %s: not an import in progress' % row['status']}
    if row['stuck'] is None:
        staging = row['staging'] or {}
        if staging.get('pages'):
            return {'verdict': 'awaiting_validation',
                    'why': '%d page image(s): waits for a person to validate it (normal)' % staging['pages']}
        return {'verdict': 'not_yet_stuck',
                'why': 'no page yet, arrived less than %d minutes ago' % params['stuck_after_minutes']}
    stuck = row['stuck']
    age = ('arrived %d minutes ago' % (stuck['age_seconds'] // 60) if stuck.get('age_seconds') is not None
           else 'arrival time unknown')
    source = files['pdf_source']
    if source is None:
        then = 'no pdf_source: copy_import flags it for re-upload'
    elif source['verdict'] == 'ok':
        then = 'its PDF %s is fine: copy_import rasterizes it (booklet, pages, IMPORT event)' % source['path']
    else:
        then = 'its PDF %s is %s: copy_import flags it for re-upload' % (source['path'], source['verdict'])
    return {'verdict': 'stuck', 'why': 'STAGING without page image (%s upload), %s; %s'
            % (stuck['creation_path'], age, then),
            'fix': fix('korrigo.ops.recover_stuck_imports', 'stuck import')}


def finalization_verdict(row, page_verdict, problems):
    final = row['finalization']
    if final is None:
        if row['status'] == 'GRADED':
            return {'verdict': 'graded', 'why': 'finalized%s' % (' by %s' % row['graded_by'] if row['graded_by'] else '')}
        return {'verdict': 'not_failing', 'why': 'status %s' % row['status']}
    cause = final['cause']
    if is_repairable(cause, page_verdict):
        return {'verdict': 'repairable', 'cause': cause,
                'why': 'cause %s; every page image exists and opens' % cause,
                'fix': fix('korrigo.ops.retry_failed_finalizations', 'failed finalization')}
    if cause == 'in_progress':
        return {'verdict': 'in_progress', 'cause': cause, 'why': 'finalize may still be running (not stale yet)'}
    return {'verdict': 'needs_human', 'cause': cause, 'pages_verdict': page_verdict,
            'why': 'page images %s: %s - restore them from backup or re-import the scan'
                   % (page_verdict.replace('_', ' '), ', '.join(p['path'] for p in problems[:5]) or 'none listed')}


def lock_verdict(row):
    lock = row['lock']
    if lock is None:
        if row['status'] == 'LOCKED':
            return {'verdict': 'locked_without_lock', 'why': 'LOCKED with no lock row',
                    'fix': fix('korrigo.ops.release_expired_locks', 'LOCKED copy without a valid lock')}
        return {'verdict': 'none', 'why': 'no lock'}
    if lock['expired']:
        return {'verdict': 'expired', 'why': 'lock of %s expired at %s' % (lock['owner'], lock['expires_at']),
                'fix': fix('korrigo.ops.release_expired_locks', 'expired lock')}
    return {'verdict': 'active', 'why': 'locked by %s until %s' % (lock['owner'], lock['expires_at']),
            'fix': fix('korrigo.ops.release_expired_locks', 'only if the teacher confirms: force release',
                       lock_conflicts_force_copy_ids=[row['copy_id']],
                       lock_conflicts_force_reason='<why, e.g. ticket number>')}


def audit_verdict(gaps):
    if not gaps:
        return {'verdict': 'complete', 'why': 'every event its creation path and status call for is there'}
    return {'verdict': 'gaps', 'gaps': gaps,
            'why': '; '.join('%s (%s)' % (g['kind'], g['rule']) for g in gaps),
            'fix': fix('korrigo.ops.audit_trail_check', 'record one note per gap (history is never rewritten)',
                       audit_events_record_notes=True)}


def build_dossiers(module):
    params = module.params
    uuids, anonymous, ordered = parse_ids(params['copies'])
    for name in ('log_lines', 'events_limit', 'stuck_after_minutes', 'stale_after_minutes', 'log_max_bytes'):
        if params[name] < 0:
            raise KorrigoError("%s must not be negative (got %d)" % (name, params[name]))
    limits = limits_from_params(params)
    root = media_root_from_params(params)
    with read_only_session(params, 'korrigo.ops:copy_dossier', 'reading the copy dossier failed') as (cursor, rules):
        cursor.execute(EXACT_SQL, {'uuids': uuids, 'anonymous': anonymous})
        resolved = cursor.fetchall()
        for query in set(anonymous) - set(r['query'] for r in resolved):
            cursor.execute(PREFIX_SQL, {'query': query, 'pattern': query + '%'})
            resolved.extend(cursor.fetchall())
        found, unknown, ambiguous = collate(resolved, ordered)
        rows, gaps = [], {}
        if found:
            cursor.execute(dossier_statement(rules), {
                'only_copy_ids': found, 'events_limit': params['events_limit'],
                'stuck_after': params['stuck_after_minutes'], 'stale_after': params['stale_after_minutes']})
            by_id = dict((str(r['copy_id']), r) for r in cursor.fetchall())
            rows = [jsonable(by_id[c]) for c in found if c in by_id]
            gaps = copy_gaps(cursor, rules, found)
    tasks = queued_tasks(params.get('broker_url'), found)
    dossiers = []
    for row in rows:
        files, page_verdict, problems = check_copy_files(root, row, limits, params['parallel'])
        verdicts = {
            'import_stuck': import_verdict(row, files, params),
            'finalization': finalization_verdict(row, page_verdict, problems),
            'lock': lock_verdict(row),
            'audit': audit_verdict(gaps.get(row['copy_id'], [])),
        }
        copy = dict((k, row[k]) for k in (
            'copy_id', 'anonymous_id', 'status', 'grading_retries', 'grading_error_message', 'is_identified',
            'validated_at', 'validated_by', 'graded_at', 'graded_by', 'locked_at', 'locked_by', 'assigned_at',
            'assigned_corrector', 'pdf_source', 'final_pdf', 'exam_id', 'exam_name', 'creation_path'))
        dossiers.append({
            'copy': copy, 'files': files, 'timeline': row['timeline'], 'events_total': row['events_total'],
            'audit_log': row['audit_log'], 'lock': row['lock'], 'annotations': row['annotations'],
            'tasks': tasks.get(row['copy_id']),
            'log_lines': lines_naming(params.get('log_file'), [row['copy_id'], row['anonymous_id']],
                                      params['log_lines'], params['log_max_bytes']),
            'verdicts': verdicts,
            'fixes': [v['fix'] for v in verdicts.values() if v.get('fix')],
        })
    return {'changed': False, 'dossiers': dossiers, 'unknown': unknown, 'ambiguous': ambiguous,
            'korrigo_version': rules['name']}


def collate(rows, ordered):
    """Resolved copy ids in the order asked; the ids that match nothing; the anonymous ids that match several."""
    matches = {}
    for row in rows:
        hit = {'copy_id': row['copy_id'], 'anonymous_id': row['anonymous_id']}
        if hit not in matches.setdefault(row['query'], []):
            matches[row['query']].append(hit)
    found, unknown, ambiguous = [], [], []
    for query in ordered:
        hits = matches.get(query, [])
        if not hits:
            unknown.append(query)
        elif len(hits) > 1:
            ambiguous.append({'query': query, 'matches': sorted(hits, key=lambda h: h['anonymous_id'])[:10],
                              'more': len(hits) > 10})
        elif hits[0]['copy_id'] not in found:
            found.append(hits[0]['copy_id'])
    return found, unknown, ambiguous


def main():
    argument_spec = korrigo_common_argument_spec()
    argument_spec.update(korrigo_media_argument_spec())
    argument_spec.update(pdf_limits_argument_spec())
    argument_spec.update(
        copies=dict(type='list', elements='str', required=True),
        broker_url=dict(type='str', no_log=True),
        log_file=dict(type='path'),
        log_lines=dict(type='int', default=20),
        log_max_bytes=dict(type='int', default=4194304),
        events_limit=dict(type='int', default=200),
        stuck_after_minutes=dict(type='int', default=5),
        stale_after_minutes=dict(type='int', default=30),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, lambda: build_dossiers(module))


if __name__ == '__main__':
    main()
