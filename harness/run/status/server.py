"""The status page server: `/` (the page), `/events` (server-sent events: the figures as JSON at
each update), `/status.json`, `/metrics` (Prometheus). Standard library only (ThreadingHTTPServer).
Further views can be mounted under a prefix (a campaign's page serves its running step's run page
under `/run/`), each with the same four routes.

Loopback by default. On any other address it needs the run's token (`--auth-token-file`, the
workers' token): `Authorization: Bearer <token>` or `?token=<token>` (a browser's EventSource
cannot send headers), compared in constant time; the token is never logged or put in the page.
"""
from __future__ import annotations

import hmac
import json
import socket
import pathlib
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness.run.status.metrics import metrics_text, registry_for
from sut.security import SecurityError, is_loopback

PAGE = (pathlib.Path(__file__).with_name("page.html")).read_bytes()
KEEPALIVE_S = 15.0


def check_status_exposure(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise SecurityError(f"--status-host {host}: a status page reachable from other hosts needs "
                            f"--auth-token-file (the workers' token), or bind it to 127.0.0.1")


@dataclass(frozen=True)
class View:
    """What one prefix serves: a status source, its page, its metrics registry."""
    source: object
    page: bytes = PAGE
    registry: object = None


class StatusServer:
    """Serves any status source (`figures()`, `wait_update(version, timeout)`, `closed`); figures of
    None (nothing to show yet) are not sent."""

    def __init__(self, source, port: int, host: str = "127.0.0.1", token: str | None = None, *,
                 page: bytes = PAGE, registry=None, mounts: dict[str, View] | None = None):
        check_status_exposure(host, token)
        self.source = source
        self.token = token
        self.registry = registry or registry_for(source)
        self.views = {"": View(source, page, self.registry)}
        for prefix, view in (mounts or {}).items():
            self.views["/" + prefix.strip("/")] = view if view.registry else \
                View(view.source, view.page, registry_for(view.source))
        handler = type("Handler", (_Handler,), {"status": self})
        server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
        try:
            self.httpd = server_class((host.strip("[]"), port), handler)
        except OSError as exc:
            raise SecurityError(f"--status-port {port}: cannot listen on {host}:{port}: "
                                f"{exc.strerror or exc}") from None
        self.httpd.daemon_threads = True
        self.streams = 0  # open /events streams
        self.streams_changed = threading.Condition()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        daemon=True, name="status-server")

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}/"

    def __enter__(self) -> "StatusServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, drain_s: float = 2.0) -> None:
        """Stop accepting; give open event streams up to `drain_s` to send the source's final figures."""
        self.httpd.shutdown()
        with self.streams_changed:
            self.streams_changed.wait_for(lambda: self.streams == 0, drain_s)
        self.httpd.server_close()

    def allows(self, header: str | None, query_token: str | None) -> bool:
        if self.token is None:
            return True
        offered = query_token or ""
        if header and header.startswith("Bearer "):
            offered = header[len("Bearer "):]
        return hmac.compare_digest(offered.encode(), self.token.encode())


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    status: StatusServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: URLs may carry the token
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urllib.parse.urlsplit(self.path)
        token = urllib.parse.parse_qs(url.query).get("token", [None])[0]
        if not self.status.allows(self.headers.get("Authorization"), token):
            return self._send(401, b"missing or wrong token\n", "text/plain; charset=utf-8")
        prefix, _, rest = url.path.rpartition("/")
        view = self.status.views.get(prefix)
        routes = {"": self._page, "status.json": self._json, "metrics": self._metrics, "events": self._events}
        route = routes.get(rest)
        if view is None or route is None:
            return self._send(404, b"not found\n", "text/plain; charset=utf-8")
        route(view)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _page(self, view: View) -> None:
        self._send(200, view.page, "text/html; charset=utf-8")

    def _json(self, view: View) -> None:
        self._send(200, json.dumps(view.source.figures()).encode(), "application/json")

    def _metrics(self, view: View) -> None:
        self._send(200, metrics_text(view.registry), "text/plain; version=0.0.4; charset=utf-8")

    def _events(self, view: View) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        source, version = view.source, -1
        with self.status.streams_changed:
            self.status.streams += 1
        try:
            while True:
                new_version, figures = source.wait_update(version, KEEPALIVE_S)
                if new_version != version and figures is not None:
                    version = new_version
                    self.wfile.write(f"data: {json.dumps(figures)}\n\n".encode())
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
                if source.closed:
                    return
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            with self.status.streams_changed:
                self.status.streams -= 1
                self.status.streams_changed.notify_all()
