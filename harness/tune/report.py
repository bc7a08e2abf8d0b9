"""What a search leaves behind: a table of every probe (printed with rich, and as Markdown), a plot
(matplotlib, optional: without it the plot is skipped with a note), the user.conf line."""
from __future__ import annotations

import json
import pathlib

from rich.console import Console
from rich.table import Table

from harness.benchmarks.definitions import LatencyLimit
from harness.tune.probe import Probe

COLUMNS = ("kind", "target qps", "p99 TTFT ms", "p99 TPOT ms", "r", "within limits", "LoadGen", "duration s",
           "wall s", "run dir")


def probe_line(p: Probe) -> str:
    if p.kind in ("offline", "tune"):
        return f"{p.samples_per_s:.3f} samples/s, {p.tokens_per_s:.0f} tokens/s ({p.wall_s:.0f} s)"
    verdict = "[green]within limits[/]" if p.within_limits else "[red]over the limits[/]"
    return (f"p99 TTFT {p.ttft_p99_ms:.1f} ms, p99 TPOT {p.tpot_p99_ms:.2f} ms (r {p.ratio:.3f}) {verdict}; "
            f"LoadGen {p.validity}; {p.wall_s:.0f} s")


def rows(probes: list[Probe]) -> list[tuple[str, ...]]:
    out = []
    for p in probes:
        qps = p.samples_per_s if p.kind == "offline" else p.qps
        out.append((p.kind, f"{qps:.3f}", f"{p.ttft_p99_ms:.1f}", f"{p.tpot_p99_ms:.2f}", f"{p.ratio:.3f}",
                    "-" if p.kind == "offline" else ("yes" if p.within_limits else "no"), p.validity,
                    f"{p.duration_ms / 1000:g}", f"{p.wall_s:.1f}", pathlib.Path(p.run_dir).name))
    return out


def escalation_lines(result: dict) -> list[str]:
    """Why the probes got longer: each repeat over the limits that doubled the probe length."""
    lines = [f"{e['at_qps']:.3f} qps passed for {e['from_ms'] / 1000:g} s but not for {e['to_ms'] / 1000:g} s "
             f"(r {e['r']:.3f}): probes of {e['to_ms'] / 1000:g} s from then on"
             for e in result.get("escalations") or ()]
    if result.get("escalation_capped"):
        lines.append(f"not escalated further: {result['escalation_capped']}")
    if result.get("repeat_over"):
        lines.append(result["repeat_over"])
    return lines


def markdown(probes: list[Probe], result: dict) -> str:
    lines = ["# find-qps", "", f"found target_qps: **{result.get('found_qps')}** ({result.get('scenario')})", ""]
    if result.get("user_conf_line"):
        lines += ["```", result["user_conf_line"], "```", ""]
    if escalation_lines(result):
        lines += ["Repeats over the limits (twice a probe's length):", ""]
        lines += [f"- {line}" for line in escalation_lines(result)] + [""]
    lines += [f"- {k}: {v}" for k, v in result.items()
              if k not in ("user_conf_line", "escalations", "escalation_capped", "repeat_over")]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(probes)]
    return "\n".join(lines) + "\n"


def plot(path: pathlib.Path, probes: list[Probe], result: dict, limit: LatencyLimit) -> str | None:
    """p99 TTFT and TPOT as fractions of their limits against target_qps; None when matplotlib is absent."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    server = sorted((p for p in probes if p.kind != "offline" and p.ratio), key=lambda p: p.qps)
    fig, ax = plt.subplots(figsize=(7, 4))
    for attr, lim, label, marker in (("ttft_p99_ms", limit.ttft_p99_ms, "p99 TTFT / limit", "o"),
                                     ("tpot_p99_ms", limit.tpot_p99_ms, "p99 TPOT / limit", "s")):
        ax.plot([p.qps for p in server], [getattr(p, attr) / lim for p in server], marker=marker, ls="", label=label)
    ax.axhline(1.0, color="red", lw=1, label="limit")
    if result.get("found_qps"):
        ax.axvline(result["found_qps"], color="green", lw=1, ls="--", label=f"found {result['found_qps']}")
    if result.get("upper_qps"):
        ax.axvline(result["upper_qps"], color="grey", lw=1, ls=":", label="Offline rate")
    ax.set_xlabel("target_qps")
    ax.set_ylabel("p99 / limit")
    ax.set_title(f"find-qps {result.get('scenario')}: every probe")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def write(out: pathlib.Path, probes: list[Probe], result: dict, limit: LatencyLimit, console: Console) -> None:
    table = Table(title=f"find-qps {result.get('scenario')}: every probe")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows(probes):
        table.add_row(*row)
    console.print(table)
    (out / "find-qps.md").write_text(markdown(probes, result))
    svg = plot(out / "find-qps.svg", probes, result, limit)
    console.print(f"plot: {svg}" if svg else "plot skipped: matplotlib is not installed (pip install -e .[all])")
    confirm = result.get("confirm") or {}
    for line in escalation_lines(result):
        console.print(f"escalation: {line}")
    console.print(f"stopped: {result.get('stopped')}; probes {result.get('probes_used')}, replayed "
                  f"{result.get('replayed')}, {result.get('spent_s')} s of runs")
    if result.get("found_qps"):
        console.print(f"found target_qps {result['found_qps']} (best pass {result.get('best_pass_qps')} for "
                      f"{result.get('best_pass_ms', 0) / 1000:g} s, margin "
                      f"{100 * result.get('margin', 0):.1f} %: {result.get('margin_reason')}); confirming run: "
                      f"{confirm.get('validity', 'not run')} {confirm.get('run_dir', '')}")
        (out / "user.conf").write_text(result["user_conf_line"] + "\n")
        console.print(f"user.conf line ({out / 'user.conf'}):\n{result['user_conf_line']}")
    else:
        console.print("[red]no target_qps within the limits was found[/]")
    (out / "result.json").write_text(json.dumps(result, indent=2))
