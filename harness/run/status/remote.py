"""Another status server's figures as a status source: a thread reads its `/events` stream (server-sent
events) and keeps the latest figures. A campaign follows each run step's server this way (the run
is a child process), so its page and `/metrics` show the same figures the run's own page shows.

`follow(url)` switches to another server (the next step's run); figures of the one before are
dropped, so a subscriber never sees one run's numbers under another's name.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from harness.run.status.source import FigureSource

READ_TIMEOUT_S = 30.0  # the server sends a keep-alive every 15 s
RETRY_S = 0.5


class RemoteStatus(FigureSource):
    def __init__(self, token: str | None = None):
        super().__init__()
        self.token = token  # the followed server's bearer token (a run with --auth-token-file asks for it)
        self._generation = 0
        self.url: str | None = None

    # --- following ------------------------------------------------------------------------------

    def follow(self, url: str | None) -> None:
        """Read `url`'s events from now on (None: follow nothing); the earlier reader stops at its next line."""
        with self._changed:
            self._generation += 1
            self.url = url
            self._publish_figures(None)
            generation = self._generation
        if url is not None:
            threading.Thread(target=self._read, args=(url, generation), daemon=True, name="remote-status").start()

    def close(self) -> None:
        with self._changed:
            self._generation += 1
            self._close()

    def _current(self, generation: int) -> bool:
        return generation == self._generation and not self.closed

    def _read(self, url: str, generation: int) -> None:
        """Until the server ends its stream (its run finished) or another url is followed; a refused
        connection is retried a few times (the server may be binding)."""
        for _ in range(20):
            try:
                request = urllib.request.Request(url.rstrip("/") + "/events", headers=(
                    {"Authorization": f"Bearer {self.token}"} if self.token else {}))
                with urllib.request.urlopen(request, timeout=READ_TIMEOUT_S) as stream:
                    for raw in stream:
                        if not self._current(generation):
                            return
                        line = raw.decode("utf-8", "replace").rstrip("\r\n")
                        if line.startswith("data: "):
                            self._publish(json.loads(line[len("data: "):]), generation)
                return
            except (urllib.error.URLError, OSError, ValueError):
                if not self._current(generation):
                    return
                with self._changed:
                    self._changed.wait(RETRY_S)

    def _publish(self, figures: dict, generation: int) -> None:
        with self._changed:
            if generation == self._generation:
                self._publish_figures(figures)
