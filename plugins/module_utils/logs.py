# -*- coding: utf-8 -*-
# Copyright: korrigo.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Korrigo's log file (backend/logs/django.log): its last lines, read in bounded memory."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def read_tail(path, max_bytes):
    """The complete lines in the last ``max_bytes`` of ``path`` (a rotating log can be large)."""
    size = os.path.getsize(path)
    with open(path, 'rb') as handle:
        if size > max_bytes:
            handle.seek(size - max_bytes)
            handle.readline()  # a partial line
        return handle.read().decode('utf-8', 'replace').splitlines()


def lines_naming(path, needles, limit, max_bytes):
    """The last ``limit`` lines of the log that contain one of ``needles`` (copy id, anonymous id), or why none
    could be read: {'path', 'readable', 'lines', 'error'}."""
    if not path:
        return {'path': None, 'readable': False, 'lines': [], 'error': 'no log file given (korrigo_log_file)'}
    needles = [n for n in needles if n]
    try:
        lines = read_tail(path, max_bytes)
    except (IOError, OSError) as err:
        return {'path': path, 'readable': False, 'lines': [], 'error': str(err)}
    named = [line for line in lines if any(n in line for n in needles)]
    return {'path': path, 'readable': True, 'lines': named[-limit:] if limit else [], 'matched': len(named)}
