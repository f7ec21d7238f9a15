# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The containers of a compose project, read from the Docker Engine API with the standard library.

Triage reads them on every school of a fleet: the Docker SDK (requests, urllib3) or community.docker's client
would cost a tenth of a second of imports each time. The answer is the API's own list, as
community.docker.docker_host_info returns it with verbose_output (Names, Labels, State, Status, ...). The daemon is
found as Docker's tools find it: the docker_host option, else DOCKER_HOST (with DOCKER_TLS_VERIFY and
DOCKER_CERT_PATH), else the local socket.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import json
import os
import socket
import ssl
from urllib.parse import quote, urlsplit

from ansible_collections.korrigo.ops.plugins.module_utils.compose import daemon_url, service_labels
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (the daemon's default endpoint)."""

    def __init__(self, path, timeout):
        super(UnixHTTPConnection, self).__init__('localhost', timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


def tls_context(environ):
    """Docker's client TLS: DOCKER_CERT_PATH holds ca.pem, cert.pem and key.pem (each optional)."""
    cert_path = environ.get('DOCKER_CERT_PATH') or os.path.expanduser('~/.docker')
    ca = os.path.join(cert_path, 'ca.pem')
    context = ssl.create_default_context(cafile=ca if os.path.isfile(ca) else None)
    cert, key = os.path.join(cert_path, 'cert.pem'), os.path.join(cert_path, 'key.pem')
    if os.path.isfile(cert) and os.path.isfile(key):
        context.load_cert_chain(cert, key)
    return context


def connection(docker_host=None, timeout=10, environ=None):
    """(the daemon's URL, an unopened HTTP connection to it); KorrigoError for a scheme this reader does not speak."""
    environ = os.environ if environ is None else environ
    url = daemon_url(docker_host, environ)
    if url.startswith('unix://'):
        return url, UnixHTTPConnection(url[len('unix://'):], timeout)
    if url.startswith(('tcp://', 'http://', 'https://')):
        tls = url.startswith('https://') or bool(environ.get('DOCKER_TLS_VERIFY'))
        parts = urlsplit('http://' + url.split('://', 1)[1])
        if not parts.hostname:
            raise KorrigoError("cannot read the Docker daemon's address from %r" % url)
        port = parts.port or (2376 if tls else 2375)
        if tls:
            return url, http.client.HTTPSConnection(parts.hostname, port, timeout=timeout,
                                                    context=tls_context(environ))
        return url, http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    raise KorrigoError("the Docker daemon at %s is not reachable by this reader (unix://, tcp:// and https:// only); "
                       "community.docker.docker_host_info speaks ssh://" % url)


def compose_containers(project, docker_host=None, timeout=10, environ=None):
    """Every container (running or not) labelled with the compose project, as the Engine API lists them."""
    url, conn = connection(docker_host, timeout, environ)
    filters = json.dumps({'label': service_labels(project)})
    try:
        conn.request('GET', '/containers/json?all=1&filters=%s' % quote(filters, safe=''))
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as err:  # refused, no socket, timeout, TLS
        raise KorrigoError("cannot reach the Docker daemon at %s: %s" % (url, err))
    finally:
        conn.close()
    if response.status != 200:
        try:
            message = json.loads(body.decode('utf-8', 'replace')).get('message')
        except (ValueError, AttributeError):
            message = body.decode('utf-8', 'replace')[:200]
        raise KorrigoError("the Docker daemon at %s answered %s to the container list: %s"
                           % (url, response.status, message))
    try:
        containers = json.loads(body.decode('utf-8'))
    except ValueError as err:
        raise KorrigoError("the Docker daemon at %s sent a container list that is not JSON: %s" % (url, err))
    if not isinstance(containers, list):
        raise KorrigoError("the Docker daemon at %s sent no container list" % url)
    return containers
