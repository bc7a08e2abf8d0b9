"""A real HTTP server on loopback that keeps what is POSTed to it (http.server in a thread), for alert
tests; `delay_s` makes it answer late, to test webhook timeouts."""
from __future__ import annotations

import http.server
import json
import threading
import time


class WebhookServer:
    def __init__(self, delay_s: float = 0.0):
        self.received: list[dict] = []
        self.delay_s = delay_s
        self.arrived = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.received.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                        "body": json.loads(body)})
                server.arrived.set()
                time.sleep(server.delay_s)
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/bench"

    def __enter__(self) -> "WebhookServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
