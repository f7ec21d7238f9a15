"""module_utils.docker_api against a fake Engine API on a unix socket: the request, the answer, the failures."""
import json
import os
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.korrigo.ops.plugins.module_utils import docker_api
from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError

CONTAINERS = [{'Id': 'a1', 'Names': ['/korrigo_db_1'], 'State': 'running', 'Status': 'Up 2 hours',
               'Labels': {'com.docker.compose.project': 'korrigo', 'com.docker.compose.service': 'db'}}]


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serve(path, status=200, body=None):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            payload = body if body is not None else json.dumps(CONTAINERS).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

        def address_string(self):
            return 'unix'

    server = UnixServer(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@pytest.fixture
def socket_path(tmp_path):
    return str(tmp_path / 'docker.sock')


def test_lists_every_container_of_the_project_by_its_label(socket_path):
    server, seen = serve(socket_path)
    try:
        containers = docker_api.compose_containers('korrigo', 'unix://' + socket_path, timeout=5)
    finally:
        server.shutdown()
    assert containers == CONTAINERS
    query = parse_qs(urlsplit(seen[0]).query)
    assert urlsplit(seen[0]).path == '/containers/json' and query['all'] == ['1']
    assert json.loads(query['filters'][0]) == {'label': ['com.docker.compose.project=korrigo']}


def test_docker_host_comes_from_the_environment_when_not_given(socket_path):
    server, _seen = serve(socket_path)
    try:
        containers = docker_api.compose_containers('korrigo', None, 5, environ={'DOCKER_HOST': 'unix://' + socket_path})
    finally:
        server.shutdown()
    assert containers == CONTAINERS


def test_an_error_answer_is_reported_with_the_daemons_message(socket_path):
    server, _seen = serve(socket_path, status=500, body=b'{"message": "daemon is shutting down"}')
    try:
        with pytest.raises(KorrigoError, match='answered 500 .*daemon is shutting down'):
            docker_api.compose_containers('korrigo', 'unix://' + socket_path, 5)
    finally:
        server.shutdown()


def test_a_body_that_is_not_a_list_is_refused(socket_path):
    server, _seen = serve(socket_path, body=b'not json')
    try:
        with pytest.raises(KorrigoError, match='not JSON'):
            docker_api.compose_containers('korrigo', 'unix://' + socket_path, 5)
    finally:
        server.shutdown()


def test_no_daemon_is_a_clear_message(tmp_path):
    missing = 'unix://' + str(tmp_path / 'nothing.sock')
    with pytest.raises(KorrigoError, match='cannot reach the Docker daemon at %s' % missing):
        docker_api.compose_containers('korrigo', missing, 2)


def test_tcp_and_tls_addresses():
    url, conn = docker_api.connection('tcp://127.0.0.1', environ={})
    assert (conn.host, conn.port) == ('127.0.0.1', 2375) and not hasattr(conn, '_context')
    url, conn = docker_api.connection('tcp://127.0.0.1:12376', environ={'DOCKER_TLS_VERIFY': '1',
                                                                        'DOCKER_CERT_PATH': os.devnull})
    assert (conn.host, conn.port) == ('127.0.0.1', 12376) and hasattr(conn, '_context')


def test_a_scheme_it_cannot_speak_is_named():
    with pytest.raises(KorrigoError, match='ssh://'):
        docker_api.connection('ssh://admin@school.example.org', environ={})
