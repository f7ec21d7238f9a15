"""awx/: job templates, surveys, schedules and workflows as code - they name real playbooks and real variables, and
the policy of awx/README.md holds (what runs unattended, with which max_changes, what needs an approval)."""
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AWX = os.path.join(ROOT, 'awx')


def load(*path):
    with open(os.path.join(ROOT, *path)) as handle:
        return yaml.safe_load(handle)


POLICY = load('awx', 'policy.yml')
TEMPLATES = POLICY['awx_korrigo_job_templates']
# What each playbook runs: the roles it imports (the survey variables must be theirs).
PLAYBOOK_ROLES = {'triage': ['triage'], 'release_expired_locks': ['lock_conflicts'],
                  'audit_trail_check': ['audit_events'], 'diagnose_latency': ['high_latency'],
                  'retry_failed_finalizations': ['finalization_failing'], 'recover_stuck_imports': ['import_stuck']}


def role_options(role):
    spec = load('roles', role, 'meta', 'argument_specs.yml')['argument_specs']['main']
    return set(spec.get('options', {}))


def test_every_job_template_names_a_playbook_of_the_collection_by_fqcn():
    assert len(TEMPLATES) >= 6 and len(set(t['name'] for t in TEMPLATES)) == len(TEMPLATES)
    for template in TEMPLATES:
        namespace, collection, name = template['playbook'].split('.')
        assert (namespace, collection) == ('korrigo', 'ops')
        assert os.path.exists(os.path.join(ROOT, 'playbooks', name + '.yml')), template['playbook']
        wrapper = load('awx', 'project', name + '.yml')
        assert wrapper == [{'name': 'Run ' + template['playbook'], 'ansible.builtin.import_playbook': template['playbook']}]
        roles = [role.split('.')[-1] for role in re.findall(
            r'name: (korrigo\.ops\.\w+)', open(os.path.join(ROOT, 'playbooks', name + '.yml')).read())]
        assert roles == ['korrigo.ops.' + r for r in PLAYBOOK_ROLES[name]] or roles == PLAYBOOK_ROLES[name]


def test_survey_and_extra_variables_exist_in_the_roles_argument_specs():
    for template in TEMPLATES:
        name = template['playbook'].split('.')[-1]
        options = set().union(*(role_options(role) for role in PLAYBOOK_ROLES[name]))
        for question in template['survey']:
            assert question['variable'] in options, (template['name'], question['variable'])
            assert question['type'] in ('integer', 'text', 'multiplechoice', 'float', 'password')
            assert question['question_name']
        for variable in template['extra_vars']:
            assert variable in options, (template['name'], variable)


def test_the_policy_read_only_unattended_approval():
    modes = dict((t['name'], t['mode']) for t in TEMPLATES)
    by_playbook = {}
    for template in TEMPLATES:
        by_playbook.setdefault(template['playbook'], set()).add(template['mode'])
        assert template['mode'] in ('read_only', 'unattended', 'approval')
        if template['mode'] == 'approval':
            assert not template['schedule'], template['name']  # never scheduled
        if template['mode'] in ('unattended', 'approval'):
            # bounded: max_changes fixed in extra_vars and no survey can raise it above the policy
            assert template['extra_vars']['korrigo_max_changes'] == template['max_changes']
            for question in template['survey']:
                if question['variable'] == 'korrigo_max_changes':
                    assert question['max'] <= template['max_changes']
    assert by_playbook['korrigo.ops.triage'] == {'read_only'}
    triage = [t for t in TEMPLATES if t['playbook'] == 'korrigo.ops.triage'][0]
    assert 'FREQ=MINUTELY;INTERVAL=15' in triage['schedule']['rrule']
    locks = [t for t in TEMPLATES if t['playbook'] == 'korrigo.ops.release_expired_locks'][0]
    assert locks['mode'] == 'unattended' and locks['max_changes'] == 200 and locks['schedule']['rrule']
    assert locks['extra_vars']['lock_conflicts_force_copy_ids'] == []  # forcing active locks is never unattended
    assert by_playbook['korrigo.ops.retry_failed_finalizations'] == {'approval'}
    assert by_playbook['korrigo.ops.recover_stuck_imports'] == {'approval'}
    # high_latency's terminate options: forced off where unattended, only behind an approval otherwise.
    for template in TEMPLATES:
        terminating = [v for v in ('high_latency_terminate_sessions', 'high_latency_terminate_long_running')
                       if template['extra_vars'].get(v) is True
                       or any(q['variable'] == v for q in template['survey'])]
        if terminating:
            assert template['mode'] == 'approval', template['name']
        elif template['playbook'] == 'korrigo.ops.diagnose_latency':
            assert template['extra_vars']['high_latency_terminate_sessions'] is False
            assert template['extra_vars']['high_latency_terminate_long_running'] is False
    assert modes['korrigo audit trail check'] == 'read_only'
    assert load('awx', 'policy.yml')['awx_korrigo_job_templates'][2]['extra_vars']['audit_events_record_notes'] is False


def test_configure_playbook_applies_the_policy_with_awx_modules():
    plays = load('awx', 'configure.yml')
    tasks = plays[0]['tasks']
    modules = [next(k for k in task if k.startswith('awx.awx.')) for task in tasks]
    assert modules == ['awx.awx.job_template', 'awx.awx.schedule', 'awx.awx.workflow_job_template']
    assert plays[0]['vars_files'] == ['policy.yml']
    workflow = tasks[2]['awx.awx.workflow_job_template']
    nodes = dict((node['identifier'], node) for node in workflow['workflow_nodes'])
    assert nodes['dry-run']['job_type'] == 'check'
    assert nodes['approval']['unified_job_template']['type'] == 'workflow_approval'
    assert nodes['dry-run']['related']['success_nodes'] == [{'identifier': 'approval'}]
    assert nodes['approval']['related']['success_nodes'] == [{'identifier': 'real-run'}]
    assert "selectattr('mode', 'eq', 'approval')" in tasks[2]['loop']
    assert "['read_only', 'unattended']" in tasks[1]['loop']


def test_every_playbook_has_an_awx_wrapper_and_a_fleet_summary():
    playbooks = sorted(name[:-4] for name in os.listdir(os.path.join(ROOT, 'playbooks'))
                       if name.endswith('.yml') and name != 'fleet_summary.yml')
    assert sorted(name[:-4] for name in os.listdir(os.path.join(AWX, 'project'))) == playbooks
    # database_roles.yml is a DBA's one-off (one database server, not a fleet of schools): no fleet summary.
    for name in sorted(set(PLAYBOOK_ROLES) | {'site', 'copy_dossier'}):
        plays = load('playbooks', name + '.yml')
        assert plays[-1]['ansible.builtin.import_playbook'] == 'fleet_summary.yml', name
        main = [play for play in plays if 'hosts' in play]
        if name != 'site':
            assert main[0]['serial'] == "{{ korrigo_serial | default('100%') }}"
            assert main[0]['max_fail_percentage'] == '{{ korrigo_max_fail_percentage | default(100) }}'


def test_execution_environment_lists_the_dependencies():
    ee = load('meta', 'execution-environment.yml')
    assert ee['version'] == 3
    deps = ee['dependencies']
    assert deps['python'] == '../requirements.txt' and deps['system'] == '../bindep.txt'
    assert {'community.postgresql'} <= set(c['name'] for c in deps['galaxy']['collections'])
    galaxy = load('galaxy.yml')
    for name, version in (galaxy.get('dependencies') or {}).items():
        assert name in set(c['name'] for c in deps['galaxy']['collections'])
