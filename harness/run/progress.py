"""Live progress: completed samples, tokens/s, elapsed time and per-worker state.

On a terminal it is a rich live line; elsewhere (CI, logs) a plain line every few seconds.
"""
from __future__ import annotations

import threading
from typing import Callable

from rich.console import Console
from rich.live import Live
from rich.text import Text


def render(snapshot: dict, label: str) -> str:
    if not snapshot:
        return f"{label}: starting"
    elapsed = snapshot["elapsed_s"]
    rate = snapshot["output_tokens"] / elapsed if elapsed > 0 else 0.0
    workers = "  ".join(f"{w['name']}:{w['state']} done {w['completed']} in {w['in_flight']}"
                        + (f" failed {w['failures']}" if w["failures"] else "")
                        + (f" reissued {w['reissued']}" if w["reissued"] else "") for w in snapshot["workers"])
    extra = f" reissued {snapshot['reissued']}" if snapshot["reissued"] else ""
    if snapshot.get("wasted_output_tokens"):
        extra += (f" wasted {snapshot['wasted_output_tokens']:,} tok ({100 * snapshot['wasted_fraction']:.1f} %,"
                  f" {snapshot['requests_run_more_than_once']} run twice)")
    return (f"{label}: {snapshot['completed']}/{snapshot['issued']} samples  {rate:,.0f} tok/s  "
            f"{int(elapsed // 60):02d}:{elapsed % 60:04.1f}{extra}  [{workers}]")


class Progress:
    def __init__(self, snapshot: Callable[[], dict], label: str, console: Console | None = None,
                 enabled: bool = True, plain_interval_s: float = 5.0):
        self.snapshot = snapshot
        self.label = label
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.plain_interval_s = plain_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="progress")

    def __enter__(self) -> "Progress":
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        if self.console.is_terminal:
            with Live(Text(render({}, self.label)), console=self.console, refresh_per_second=4) as live:
                while not self._stop.wait(0.25):
                    live.update(Text(render(self.snapshot(), self.label)))
                live.update(Text(render(self.snapshot(), self.label)))
        else:
            while not self._stop.wait(self.plain_interval_s):
                self.console.print(render(self.snapshot(), self.label), highlight=False)
            self.console.print(render(self.snapshot(), self.label), highlight=False)
