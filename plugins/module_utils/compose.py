# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a compose deployment's containers are found, whoever looks (worker.py's Docker SDK, docker_api's reader,
the compose_services filter): the labels both Compose versions set, and the daemon Docker's tools would use.
Constants and one function only: the filters import it on the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

COMPOSE_PROJECT_LABEL = 'com.docker.compose.project'
COMPOSE_SERVICE_LABEL = 'com.docker.compose.service'
DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'


def daemon_url(docker_host=None, environ=None):
    """The Docker daemon's URL: the option, else DOCKER_HOST, else the local socket."""
    environ = os.environ if environ is None else environ
    return docker_host or environ.get('DOCKER_HOST') or DEFAULT_DOCKER_HOST


def service_labels(project, service=None):
    """The label filters of a compose project (and of one of its services)."""
    labels = ['%s=%s' % (COMPOSE_PROJECT_LABEL, project)]
    if service is not None:
        labels.append('%s=%s' % (COMPOSE_SERVICE_LABEL, service))
    return labels
