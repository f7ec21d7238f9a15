"""Live sessions for the latency tests: the stand-in's holder (a row lock idle in transaction + a waiter)."""
import os
import tempfile

import pytest

from conftest import dsn_for
from korrigo_stack import scenarios_latency


@pytest.fixture
def held_sessions(request):
    """held_sessions(db) -> {'holder_pid', 'blocker_pid', 'waiter_pid', 'contended_copy_id'}; stopped at teardown."""
    pidfile = os.path.join(tempfile.mkdtemp(prefix='korrigo-latency-'), 'holder.pid')
    request.addfinalizer(lambda: scenarios_latency.stop(pidfile))

    def start(db):
        seeded = db.seed('latency')
        pids = scenarios_latency.start(dsn_for(db.name), seeded['contended_copy_id'], pidfile, max_seconds=300)
        pids['contended_copy_id'] = seeded['contended_copy_id']
        return pids
    return start
