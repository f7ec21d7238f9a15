"""alertmanager: an Event-Driven Ansible source receiving Alertmanager's webhook notifications, with a shared token.

Like ansible.eda.alertmanager (which needs the ansible.eda collection, from Galaxy), with these differences:

* a shared token is required: ``Authorization: Bearer <token>`` (Alertmanager's ``http_config.authorization``) or
  ``X-Token: <token>``; a request without the right one gets 401 and puts nothing on the queue. Only
  ``allow_unauthenticated: true`` turns the check off (for a socket nobody else can reach);
* it listens on 127.0.0.1 by default (upstream: 0.0.0.0) and on one path only (``endpoint``, default /endpoint);
* one event per alert, ``{"alert": <the alert>, "meta": {...}}``, and by default not the whole notification
  (``skip_original_data`` defaults to true; with false the notification is also put, as ``{"payload": ...}``);
* ``meta.hosts`` is the alert's ``labels.school`` by default (``data_host_path``): the rulebook's run_playbook then
  runs on that inventory host only; the token never appears in ``meta.headers``.

Arguments:
    host: address to listen on (default 127.0.0.1)
    port: TCP port (default 5000)
    endpoint: URL path that accepts POSTs (default /endpoint)
    token: the shared token (a string; empty is refused unless allow_unauthenticated)
    allow_unauthenticated: accept requests without a token (default false)
    data_alerts_path: where the alerts list is in the notification (default "alerts")
    data_host_path: where the host name is in an alert (default "labels.school")
    data_path_separator: separator of the two paths above (default ".")
    skip_original_data: do not put the whole notification on the queue (default true)
    max_body_bytes: largest accepted body (default 1 MiB; more gets 413)

Responses: 202 accepted, 400 not a JSON object / no alerts list, 401 bad or missing token, 404 other path,
405 not a POST, 413 body too large.
"""

import asyncio
import hmac
import json
import logging
from typing import Any, Dict

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhook notifications (with a shared token) as events.
description:
  - An HTTP server for Alertmanager's webhook receiver; one event per alert, C(alert) and C(meta).
  - Requests need the shared token, as C(Authorization: Bearer <token>) or C(X-Token: <token>).
options:
  host:
    description: Address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to listen on.
    type: int
    default: 5000
  endpoint:
    description: The URL path accepting the notifications.
    type: str
    default: /endpoint
  token:
    description: The shared token. Required unless O(allow_unauthenticated).
    type: str
  allow_unauthenticated:
    description: Accept notifications without a token.
    type: bool
    default: false
  data_alerts_path:
    description: Path of the alerts list in the notification.
    type: str
    default: alerts
  data_host_path:
    description: Path of the host name in an alert; its value becomes C(meta.hosts).
    type: str
    default: labels.school
  data_path_separator:
    description: Separator of O(data_alerts_path) and O(data_host_path).
    type: str
    default: "."
  skip_original_data:
    description: Do not put the whole notification on the queue as well.
    type: bool
    default: true
  max_body_bytes:
    description: Largest accepted request body.
    type: int
    default: 1048576
"""

EXAMPLES = r"""
- korrigo.ops.alertmanager:
    host: 127.0.0.1
    port: 5050
    token: "{{ KORRIGO_EDA_TOKEN }}"
"""

logger = logging.getLogger(__name__)

# Headers kept in meta.headers (never Authorization / X-Token).
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For")


def _get(data: Any, path: str, separator: str) -> Any:
    """The value at ``path`` (keys, or list indexes) in ``data``; None when absent."""
    for part in path.split(separator) if path else []:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _given_token(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("X-Token", "")


def _hosts(alert: Dict, path: str, separator: str) -> list:
    value = _get(alert, path, separator)
    if value is None or value == "":
        return []
    value = str(value)
    if path.split(separator)[-1] == "instance" and ":" in value and not value.startswith("["):
        value = value.rsplit(":", 1)[0]  # host:port -> host, as upstream does with labels.instance
    return [value]


def make_app(queue: asyncio.Queue, args: Dict[str, Any]) -> web.Application:
    token = str(args.get("token") or "")
    insecure = _bool(args.get("allow_unauthenticated", False))
    if not token and not insecure:
        raise ValueError("alertmanager source: a token is required (or allow_unauthenticated: true)")
    endpoint = "/" + str(args.get("endpoint", "/endpoint")).lstrip("/")
    separator = str(args.get("data_path_separator", "."))
    alerts_path = str(args.get("data_alerts_path", "alerts"))
    host_path = str(args.get("data_host_path", "labels.school"))
    skip_original = _bool(args.get("skip_original_data", True))

    async def receive(request: web.Request) -> web.Response:
        if request.path != endpoint:
            return web.json_response({"detail": "not found"}, status=404)
        if request.method != "POST":
            return web.json_response({"detail": "method not allowed"}, status=405, headers={"Allow": "POST"})
        if token and not hmac.compare_digest(_given_token(request).encode("utf-8"), token.encode("utf-8")):
            logger.warning("alertmanager source: refused a notification from %s (bad or missing token)",
                           request.remote)
            return web.json_response({"detail": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        try:
            payload = await request.json()
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"detail": "body is not JSON"}, status=400)
        alerts = _get(payload, alerts_path, separator) if isinstance(payload, dict) else None
        if not isinstance(alerts, list):
            return web.json_response({"detail": "no alerts list at %r" % alerts_path}, status=400)
        meta = {
            "endpoint": endpoint,
            "headers": dict((k, request.headers[k]) for k in KEPT_HEADERS if k in request.headers),
            "receiver": payload.get("receiver"),
            "group_key": payload.get("groupKey"),
            "notification_status": payload.get("status"),
        }
        if not skip_original:
            await queue.put({"payload": payload, "meta": dict(meta)})
        for alert in alerts:
            if isinstance(alert, dict):
                hosts = _hosts(alert, host_path, separator)
                labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
                logger.info("alertmanager source: alert %s %s for %s", labels.get("alertname", "?"),
                            alert.get("status", "?"), ",".join(hosts) or "no host")
                await queue.put({"alert": alert, "meta": dict(meta, hosts=hosts)})
        return web.json_response({"accepted": len(alerts)}, status=202)

    app = web.Application(client_max_size=int(args.get("max_body_bytes", 1024 * 1024)))
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


async def main(queue: asyncio.Queue, args: Dict[str, Any]) -> None:
    """EDA source entry point: serve until cancelled."""
    app = make_app(queue, args)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, str(args.get("host", "127.0.0.1")), int(args.get("port", 5000)))
    await site.start()
    logger.info("alertmanager source listening on %s:%s", args.get("host", "127.0.0.1"), args.get("port", 5000))
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    # python alertmanager.py PORT TOKEN: prints the events it would put on the queue.

    class _PrintQueue(asyncio.Queue):
        async def put(self, item):
            print(json.dumps(item), flush=True)

    import sys

    asyncio.run(main(_PrintQueue(), {"port": int(sys.argv[1]) if len(sys.argv) > 1 else 5000,
                                     "token": sys.argv[2] if len(sys.argv) > 2 else "",
                                     "allow_unauthenticated": len(sys.argv) <= 2}))
