"""Live progress of a search with rich: one line per probe (probe n of m, the result, best so far,
budget spent and left), plain text when the output is not a terminal."""
from __future__ import annotations

import time

from rich.console import Console


class Live:
    def __init__(self, label: str, max_probes: int, budget_s: float, quiet: bool = False):
        self.console = Console(highlight=False, quiet=quiet)
        self.label, self.max_probes, self.budget_s = label, max_probes, budget_s
        self.started = time.monotonic()

    def starting(self, n: int, what: str, spent_s: float, estimate_s: float) -> None:
        left = self.budget_s - spent_s
        self.console.print(f"[bold]{self.label}[/] probe {n} of <= {self.max_probes}: {what} "
                           f"[dim](~{estimate_s:.0f} s; budget {spent_s:.0f} s spent, {left:.0f} s left)[/]")

    def done(self, text: str, best: str, replayed: bool = False) -> None:
        tag = "[cyan]replayed from the state file[/] " if replayed else ""
        self.console.print(f"    {tag}{text}   [green]best so far: {best}[/]")

    def note(self, text: str) -> None:
        self.console.print(text)
