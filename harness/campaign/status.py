"""A campaign's live status: the plan and every step's record (from the state file as it is saved,
so the page cannot disagree with `campaign-state.json`), the step now running, the time left
estimated from the plan, and the running step's own run figures.

The run figures are not recomputed here: a run step is a child `harness run --status-port 0`, and
`RemoteStatus` follows that run's own status server (its URL is the `status page:` line in the
step's log). The campaign's server mounts that source under `/run/` with the run's own page, and
its `/metrics` exports the campaign's gauges and the run's together.
"""
from __future__ import annotations

import pathlib
import statistics
import threading
import time

from harness.campaign.plan import Decision
from harness.campaign.state import FINISHED
from harness.campaign.status_metrics import registry_for_campaign
from harness.run.status.observer import STATUS_LINE
from harness.run.status.remote import RemoteStatus
from harness.run.status.server import PAGE as RUN_PAGE
from harness.run.status.server import StatusServer, View
from harness.run.status.source import FigureSource

PAGE = (pathlib.Path(__file__).with_name("status_page.html")).read_bytes()
LOG_SCAN_BYTES = 65536  # the status line comes before the workers are contacted


def estimate_left(decisions: list[Decision], records: dict[str, dict], finished_now: set[str],
                  running: str | None, running_s: float, run_eta_s: float | None) -> tuple[float | None, int]:
    """(seconds left for the steps this campaign still runs, or None when none has an estimate yet;
    how many of them have no estimate)."""
    # A step is estimated by its own earlier duration, else the mean of finished steps of its kind and
    # scenario, else of its kind; the running one by what is left of that, or the run's own estimate
    # when that is longer (its LoadGen test is only part of the step).
    done = [(d.step, r["duration_s"]) for d in decisions
            if (r := records.get(d.step.id, {})).get("status") in FINISHED and r.get("duration_s")]
    left, unknown, known = 0.0, 0, 0
    for d in decisions:
        step = d.step
        if d.action != "run" or step.id in finished_now:
            continue
        same = [s for o, s in done if o.kind == step.kind and o.scenario == step.scenario]
        kind = [s for o, s in done if o.kind == step.kind]
        guess = d.record.get("duration_s") or (statistics.mean(same) if same else None) or \
            (statistics.mean(kind) if kind else None)
        if step.id == running:
            guess = max(guess - running_s, 0.0) if guess is not None else None
            if run_eta_s is not None:
                guess = max(guess or 0.0, run_eta_s)
        if guess is None:
            unknown += 1
        else:
            left, known = left + guess, known + 1
    return (round(left, 1) if known or not unknown else None), unknown


class CampaignStatus(FigureSource):
    """A status source: recomputed at each state save and every `interval_s` (elapsed times move, the
    run's figures arrive)."""

    def __init__(self, name: str, out: pathlib.Path, decisions: list[Decision], interval_s: float = 1.0):
        super().__init__()
        self.name, self.out, self.decisions, self.interval_s = name, out, decisions, interval_s
        self.run = RemoteStatus()
        self.state = "starting"
        self.exit_code: int | None = None
        self._records: dict[str, dict] = {d.step.id: d.record for d in decisions}
        self._finished_now: set[str] = set()
        self._running: str | None = None
        self._running_since = 0.0
        self._run_step: str | None = None   # the step whose run the RemoteStatus follows
        self._started = time.monotonic()
        self._figures = self._compute()
        self._thread = threading.Thread(target=self._tick, daemon=True, name="campaign-status")

    # --- what the campaign tells it ---------------------------------------------------------------

    def on_state(self, data: dict) -> None:
        """The state file's content as just saved (a copy: the campaign goes on changing its own)."""
        with self._changed:
            records = data.get("steps", {})
            running = next((s for s, r in records.items() if r.get("status") == "running"), None)
            self._finished_now.update(s for s, r in records.items()  # ran, or was blocked, in this campaign
                                      if r.get("status") != "running" and r != self._records.get(s))
            if running and running != self._running:
                self._running_since = time.monotonic()
            self._running = running
            self._records = records
        self._refresh()

    def start(self) -> "CampaignStatus":
        self.state = "running"
        self._thread.start()
        self._refresh()
        return self

    def finish(self, state: str, exit_code: int | None) -> None:
        self.state, self.exit_code = state, exit_code
        self.run.close()
        self._refresh()
        self._close()

    # --- computing --------------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self.closed:
            self._follow_running_run()
            self._refresh()
            with self._changed:
                self._changed.wait_for(lambda: self.closed, self.interval_s)

    def _follow_running_run(self) -> None:
        with self._changed:
            running, record = self._running, self._records.get(self._running or "", {})
        if running != self._run_step and running is not None and record.get("log"):
            url = _status_url(pathlib.Path(record["log"]))
            if url:
                self._run_step = running
                self.run.follow(url)

    def _refresh(self) -> None:
        with self._changed:
            self._publish_figures(self._compute())

    def _compute(self) -> dict:
        now = time.monotonic()
        run = self.run.figures()
        running_s = now - self._running_since if self._running else 0.0
        eta, unknown = estimate_left(self.decisions, self._records, self._finished_now, self._running, running_s,
                                     (run or {}).get("eta_s") if self._run_step == self._running else None)
        steps, counts = [], {}
        for d in self.decisions:
            record = self._records.get(d.step.id, {})
            status = record.get("status") or "pending"
            counts[status] = counts.get(status, 0) + 1
            steps.append({"id": d.step.id, "kind": d.step.kind, "scenario": d.step.scenario, "plan": d.action,
                          "status": status, "attempts": record.get("attempts", 0),
                          "duration_s": record.get("duration_s"), "run_dir": record.get("run_dir") or "",
                          "detail": record.get("detail") or ""})
        return {"campaign": self.name, "output": str(self.out), "state": self.state, "exit_code": self.exit_code,
                "elapsed_s": round(now - self._started, 1), "eta_s": eta, "eta_unknown_steps": unknown,
                "running": self._running, "running_s": round(running_s, 1) if self._running else None,
                "to_run": sum(d.action == "run" for d in self.decisions),
                "finished_now": len(self._finished_now), "counts": counts, "steps": steps,
                "run_step": self._run_step, "run": run}


def _status_url(log: pathlib.Path) -> str | None:
    try:
        with open(log, "rb") as handle:
            text = handle.read(LOG_SCAN_BYTES).decode("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(STATUS_LINE):
            return line[len(STATUS_LINE):].strip()
    return None


def serve(status: CampaignStatus, port: int, host: str, token: str | None) -> StatusServer:
    """The campaign's page, `/events`, `/status.json`, `/metrics` (campaign and running run), and the
    running step's own run page under `/run/`. Binds now: a port in use fails before any step."""
    return StatusServer(status, port, host, token, page=PAGE, registry=registry_for_campaign(status),
                        mounts={"run": View(status.run, RUN_PAGE)})
