"""What a campaign shows: the plan before it acts, the summary table at the end (rich), the check's
lines, and `campaign.md`, a short report linking every result to its run directory."""
from __future__ import annotations

import os
import pathlib
import time

from rich.console import Console
from rich.table import Table

from harness.campaign.plan import Decision, Step

STYLE = {"passed": "green", "invalid": "yellow", "failed": "red", "interrupted": "red", "blocked": "magenta",
         "running": "red", "not run": "dim"}


def plan_lines(decisions: list[Decision]) -> list[str]:
    lines = []
    for d in decisions:
        if d.action == "keep":
            what = f"keep     ({d.record.get('status')}, from an earlier run)"
        else:
            what = f"run      ({d.reason})" if d.reason else "run"
        shown = ", ".join(d.step.needs) if len(d.step.needs) <= 2 else f"{len(d.step.needs)} steps above"
        needs = f"  [needs {shown}]" if d.step.needs else ""
        lines.append(f"  {d.step.id:28s} {what}{needs}")
    return lines


def print_plan(console: Console, decisions: list[Decision], out: pathlib.Path) -> None:
    todo = sum(d.action == "run" for d in decisions)
    console.print(f"[bold]campaign plan[/] ({out}): {todo} step(s) to run, {len(decisions) - todo} kept")
    for line in plan_lines(decisions):
        console.print(line, markup=False, highlight=False)


def _row(step: Step, record: dict, out: pathlib.Path) -> tuple[str, str, str, str, str, str]:
    status = record.get("status", "not run")
    duration = f"{record['duration_s']:.1f}" if record.get("duration_s") is not None else "-"
    run_dir = os.path.relpath(record["run_dir"], out) if record.get("run_dir") else "-"
    return step.id, status.upper(), duration, str(record.get("attempts", 0)), run_dir, record.get("detail", "")


def print_summary(console: Console, steps: list[Step], records: dict[str, dict], out: pathlib.Path) -> None:
    """One row per step (the result cut to a line; campaign.md has it whole); run directories
    relative to the output folder."""
    table = Table(title=f"campaign summary ({out})", show_lines=False)
    for column in ("step", "verdict", "s", "attempts", "run directory", "result"):
        table.add_column(column, overflow="fold")
    for step in steps:
        row = _row(step, records.get(step.id, {}), out)
        style = STYLE.get(records.get(step.id, {}).get("status", "not run"), "")
        detail = row[5] if len(row[5]) <= 70 else row[5][:67] + "..."
        table.add_row(row[0], f"[{style}]{row[1]}[/]", row[2], row[3], row[4], detail)
    console.print(table)
    lines = records.get("check", {}).get("data", {}).get("lines")
    if lines is not None:
        console.print(f"[bold]harness check[/]: {len(lines)} problem(s)" if lines else
                      "[bold]harness check[/]: no problems found")
        for line in lines:
            console.print(f"  {line}", markup=False, highlight=False)


def write_markdown(path: pathlib.Path, config_file: str, config_sha: str, steps: list[Step], records: dict,
                   versions: dict, revision: str | None, notes: list[str]) -> None:
    out = path.parent

    def link(target: str) -> str:
        if not target:
            return "-"
        rel = os.path.relpath(target, out)
        return f"[{rel}]({rel})"

    lines = ["# Campaign report", "", f"- config: `{config_file}` (sha256 {config_sha})",
             f"- written: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", f"- harness revision: {revision or 'unknown'}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))]
    lines += [f"- **{note}**" for note in notes]
    lines += ["", "| step | verdict | duration s | attempts | run directory | result |", "| --- | --- | --- | --- | --- | --- |"]
    for step in steps:
        record = records.get(step.id, {})
        sid, verdict, duration, attempts, run_dir, detail = _row(step, record, out)
        lines.append(f"| {sid} | {verdict} | {duration} | {attempts} | {link(record.get('run_dir', ''))} | "
                     f"{detail.replace('|', '/')} |")
    check = records.get("check", {}).get("data", {}).get("lines")
    if check is not None:
        lines += ["", "## harness check", ""] + ([f"- {line}" for line in check] or ["no problems found"])
    path.write_text("\n".join(lines) + "\n")
