"""filter/worker.py: what a celery_health step did and left to a human, in the reports' words."""
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.korrigo.ops.plugins.filter.worker import HELD_BACK, worker_actions, worker_todo


def test_an_action_only_when_the_step_acted_named_by_unit_or_service():
    assert worker_actions({'action': 'none'}, 'korrigo/celery') == []
    assert worker_actions({}, 'korrigo/celery') == []
    assert worker_actions({'action': 'started'}, 'korrigo/celery') == [
        {'kind': 'worker_started', 'anonymous_id': 'korrigo/celery'}]
    assert worker_actions({'action': 'restarted', 'service': {'unit': 'celery.service'}}, 'x')[0]['anonymous_id'] \
        == 'celery.service'
    with pytest.raises(AnsibleFilterError):
        worker_actions(None)


def test_todo_lines_in_order():
    assert worker_todo('') == [] and worker_todo('', '', False) == []
    assert worker_todo('restart it', 'docker unreachable', True) == ['restart it', 'docker unreachable', HELD_BACK]
    assert worker_todo('', 'boom') == ['boom']
