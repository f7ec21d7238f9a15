# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Korrigo's MEDIA_ROOT as the modules see it: where it is, what stays inside it, how full its filesystem is.

One place decides whether a path is inside the media root (symlinks resolved), and one place finds the media
root from the compose stack (the bind mount of ``/app/media`` in the ``backend`` container, found through
worker.py's Docker helpers by the labels ``com.docker.compose.project`` / ``com.docker.compose.service``, which
Compose v1 and v2 both set).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.korrigo.ops.plugins.module_utils.errors import KorrigoError
# The Docker client and compose containers have one home, worker.py; the media root is found through them.
from ansible_collections.korrigo.ops.plugins.module_utils.worker import docker_client, service_containers

CONTAINER_MEDIA_ROOT = '/app/media'


def korrigo_media_argument_spec():
    """Options locating MEDIA_ROOT (the korrigo.ops.korrigo.media fragment)."""
    return dict(
        media_root=dict(type='path'),
        compose_project=dict(type='str'),
        media_service=dict(type='str', default='backend'),
        docker_host=dict(type='str'),
    )


def discover_media_root(project, service='backend', docker_host=None, container_path=CONTAINER_MEDIA_ROOT):
    """Host path bound at ``container_path`` in the service's container."""
    client = docker_client(docker_host)
    try:
        containers = service_containers(client, project, service)
        if not containers:
            raise KorrigoError("no container of compose service %s/%s: set media_root" % (project, service))
        for mount in containers[0].attrs.get('Mounts') or []:
            if mount.get('Destination') == container_path and mount.get('Source'):
                return mount['Source']
        raise KorrigoError("container %s mounts nothing at %s: set media_root" % (containers[0].name, container_path))
    finally:
        client.close()


def media_root_from_params(params):
    """media_root, or discovered from compose_project; must be an existing directory."""
    root = params.get('media_root')
    if not root:
        if not params.get('compose_project'):
            raise KorrigoError("set media_root (host path of Korrigo's MEDIA_ROOT) or compose_project to find it "
                               "from the %s container's %s mount" % (params.get('media_service') or 'backend',
                                                                     CONTAINER_MEDIA_ROOT))
        root = discover_media_root(params['compose_project'], params.get('media_service') or 'backend',
                                   params.get('docker_host'))
    if not os.path.isdir(root):
        raise KorrigoError("media root %s is not a directory" % root)
    return os.path.realpath(root)


class OutsideMediaRoot(Exception):
    """A path resolves (symlinks included) outside the media root."""


def resolve(root, path):
    """(relative path, real path) of ``path`` (relative to ``root`` or absolute), refusing anything that resolves
    outside ``root``. ``root`` must already be a realpath."""
    if path is None or str(path).strip() == '' or '\x00' in str(path):
        raise OutsideMediaRoot("empty or invalid path %r" % (path,))
    candidate = path if os.path.isabs(path) else os.path.join(root, path)
    real = os.path.realpath(candidate)
    if real != root and os.path.commonpath([root, real]) != root:
        raise OutsideMediaRoot("%s resolves to %s, outside the media root %s" % (path, real, root))
    return os.path.relpath(real, root), real


def disk_usage(root):
    """Free space and inodes of the filesystem holding ``root``."""
    st = os.statvfs(root)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    inodes = st.f_files
    inodes_free = st.f_favail
    return {
        'path': root,
        'total_bytes': total,
        'free_bytes': free,
        'used_percent': round(100.0 * (total - free) / total, 2) if total else 0.0,
        'inodes_total': inodes,
        'inodes_free': inodes_free,
        'inodes_used_percent': round(100.0 * (inodes - inodes_free) / inodes, 2) if inodes else 0.0,
    }
