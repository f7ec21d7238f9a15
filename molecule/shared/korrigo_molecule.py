# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest plugin shared by the Molecule scenarios' testinfra tests (loaded with ``-p korrigo_molecule``).

Fixtures:

``db``
    ``db.rows(query)`` / ``db.scalar(query)`` run SQL on the test stack's database through ``psql``
    on the instance (``host.run``), connected with the instance's inventory variables
    (``korrigo_db_*``), the same ones the playbooks use. Rows come back as dictionaries.
``seeded``
    The seeding CLI's JSON summary that ``shared/seed.yml`` kept during prepare:
    ``seeded['locks']['expired_copy_ids']``, ``seeded.users['korrigo-ops']``...
``snapshots``
    What ``shared/snapshot.yml`` kept during prepare: ``{name: {'query': ..., 'rows': [...]}}``;
    ``assert db.rows(snapshots[name]['query']) == snapshots[name]['rows']`` checks nothing changed.
``uuid_array``
    ``uuid_array(ids)`` -> ``ARRAY['...']::uuid[]`` literal of validated UUIDs, to put ids in SQL.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import uuid

import pytest


class Database(object):
    """SQL through psql on the testinfra host."""

    def __init__(self, host, variables):
        self.host = host
        self.dsn = 'postgresql://%s:%s@%s:%s/%s' % (
            variables['korrigo_db_user'], variables['korrigo_db_password'], variables['korrigo_db_host'],
            variables['korrigo_db_port'], variables['korrigo_db_name'])

    def rows(self, query):
        """Rows of ``query`` as a list of dictionaries (values as PostgreSQL's json renders them)."""
        wrapped = "SELECT coalesce(json_agg(q), '[]'::json) FROM (%s) q" % query
        result = self.host.run('psql -X -q -A -t -v ON_ERROR_STOP=1 -d %s -c %s', self.dsn, wrapped)
        assert result.rc == 0, 'psql failed (rc=%d): %s\nquery: %s' % (result.rc, result.stderr, query)
        return json.loads(result.stdout)

    def scalar(self, query):
        rows = self.rows(query)
        assert len(rows) == 1 and len(rows[0]) == 1, 'expected one value from %s, got %r' % (query, rows)
        return list(rows[0].values())[0]


class Seeded(dict):
    """The seed CLI's summary, with each seeded scenario under its name."""

    def __init__(self, summary):
        super(Seeded, self).__init__((entry['scenario'], entry) for entry in summary['scenarios'])
        self.summary = summary
        self.users = {}
        for entry in summary['scenarios']:
            self.users.update(entry.get('users') or {})


def uuid_array(ids):
    values = [str(uuid.UUID(str(value))) for value in ids]
    return 'ARRAY[%s]::uuid[]' % ', '.join("'%s'" % value for value in values)


@pytest.fixture(name='db')
def db_fixture(host):
    return Database(host, host.ansible.get_variables())


def _kept(name):
    path = os.path.join(os.environ['MOLECULE_EPHEMERAL_DIRECTORY'], name)
    if not os.path.exists(path):
        pytest.fail('%s is missing: run the scenario\'s prepare first (molecule prepare --force)' % path)
    with open(path) as handle:
        return json.load(handle)


@pytest.fixture(name='seeded', scope='session')
def seeded_fixture():
    return Seeded(_kept('seed.json'))


@pytest.fixture(name='snapshots', scope='session')
def snapshots_fixture():
    return _kept('snapshots.json')


@pytest.fixture(name='uuid_array', scope='session')
def uuid_array_fixture():
    return uuid_array
