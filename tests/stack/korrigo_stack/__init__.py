"""Korrigo stand-in for the korrigo.ops test stack.

A small, faithful imitation of the parts of Korrigo (Django + Celery + PostgreSQL + Redis) that the
remediation collection touches: the real database schema of two Korrigo versions (``schema/``,
``migrate``), realistic data (``seed``), the backend's health/metrics/log surface (``backend``) and
the Celery worker with Korrigo's task names (``worker``). Shared plumbing lives in ``common``.

No Django: stdlib + psycopg2 + redis + celery + prometheus_client (+ PyMuPDF in the worker).
"""

__all__ = ["common", "migrate", "seed", "backend", "worker"]
