"""What a status server reads: the latest figures under a version that grows with each publish, and a
closed flag. Each subscriber (one server-sent-events stream) blocks in `wait_update` until either
changes. The run's `LiveStatus`, the campaign's `CampaignStatus` and `RemoteStatus` (another server's
figures) are all one of these.
"""
from __future__ import annotations

import threading


class FigureSource:
    def __init__(self, figures: dict | None = None):
        self._changed = threading.Condition()  # reentrant: a subclass may publish while holding it
        self._figures = figures
        self._version = 0
        self._closed = False

    def figures(self) -> dict | None:
        with self._changed:
            return self._figures

    def wait_update(self, version: int, timeout: float) -> tuple[int, dict | None]:
        """Block until the figures are newer than `version`, the source closes, or `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != version or self._closed, timeout)
            return self._version, self._figures

    @property
    def closed(self) -> bool:
        return self._closed

    def _publish_figures(self, figures: dict | None) -> None:
        with self._changed:
            self._figures = figures
            self._version += 1
            self._changed.notify_all()

    def _close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
