"""The engine service's health endpoint: ``GET /health`` → the report of ``engine/health.py``.

The standard library's ``ThreadingHTTPServer``: one small read-only endpoint needs no web
framework. It binds to ``health.listen`` (loopback by default in the docs; a non-loopback
address is honoured, with a warning, because the installer asked for it), answers ``GET
/health`` (and ``GET /``) with the JSON report, 404 for other paths, and 405 for every other
method: it never changes anything. Each request builds a fresh report from the database
(read-only) and the beacons, so it shows the real state. Requests are logged at DEBUG only (a
monitor polling every few seconds must not flood the journal).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .config import is_loopback, parse_listen

log = logging.getLogger(__name__)

PATHS = ("/health", "/")


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer
    server_version = "art2mus-health"
    # A client that connects and sends nothing must not hold a thread for ever.
    timeout = 10

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in PATHS:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found; GET /health"})
            return
        try:
            report = self.server.report()
        except Exception as exc:
            log.exception("health report failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"health report failed: {exc}"})
            return
        self._send(HTTPStatus.OK, report)

    def do_HEAD(self) -> None:
        self._refuse()

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "read-only: GET /health"}, allow=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _send(self, status: HTTPStatus, body: dict[str, Any], *, allow: bool = False) -> None:
        data = json.dumps(body, indent=1, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if allow:
            self.send_header("Allow", "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nothing to tell a scanner

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer(ThreadingHTTPServer):
    """Serves ``report()`` at ``listen`` ("HOST:PORT") in a daemon thread until :meth:`stop`."""

    daemon_threads = True

    def __init__(self, listen: str, report: Callable[[], dict[str, Any]]):
        host, port = parse_listen(listen)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.report = report
        self._thread: threading.Thread | None = None
        if not is_loopback(host):
            log.warning("health endpoint on %s, not loopback: anyone on that network can read it", listen)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), int(self.server_address[1])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/health"

    def start(self) -> HealthServer:
        # A short poll so that stop() (shutdown waits for the loop to look) returns at once.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="health-http", daemon=True
        )
        self._thread.start()
        log.info("health endpoint: %s", self.url)
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
