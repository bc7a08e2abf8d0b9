"""Issue 12's find-qps goal checked in one command: is the found QPS within 5 % of the knee, and did
finding it cost at most 25 % of a grid of full-length runs at 5 % steps, both measured on this machine?

1. One worker (sut.worker.launch: --engine, --model, --worker-arg), warmed up by an untimed Offline run.
2. `python -m harness find-qps` as a child, as a user runs it; its wall time is the search's cost.
3. A Server run at found x 1.10 with the confirming run's settings and length. Within 5 %: the
   confirming run VALID and this one INVALID (the knee lies between them).
4. The grid: confirm-length runs at every 5 % step of the Offline bound (20 runs: the grid that finds
   the knee without knowing where it is; the goal is judged against it), each the confirm length plus
   the per-run overhead measured here (median wall - min_duration of the confirm-length runs); its
   Offline bound is free. Beside it, the stricter walk from the top down to the found value's step
   (fewest: to the first step below found x 1.10), an adaptive search that costs k + 1 runs for a knee
   at (1 - 0.05 k) of the bound, and the walk up. Also projected (not measured) to 60-s probes and a
   600-s confirm.
Durations are scaled down to fit one 10-minute call, all by the same factor (probes 6 s and the confirm
60 s: find-qps's defaults / 10), the grid's with the confirming run's. Writes
OUT/find-qps-check-<device>-<commit>.json, and .probes.md/.svg (find-qps's table and plot) beside it.
Exit 0: both goals met, 1: not met, 2: bad flags, 3: failed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from harness.artifacts.dataset import DatasetError, load_dataset
from harness.artifacts.metrics import summary_metrics
from harness.benchmarks.scenarios import SCENARIOS
from harness.perf.gpu_suite import ROOT
from harness.perf.stamp import commit_arg, device_slug, git_commit, revision_tag
from harness.perf.harness_run import run_harness
from harness.run.flags import int_in
from harness.run.settings import submission_server_user_conf
from harness.run.synthetic import synthetic_records
from sut.engines import engine_names
from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec

STEP, PLUS, GOAL_RATIO = 0.05, 1.10, 0.25
FULL_PROBE_S, FULL_CONFIRM_S = 60.0, 600.0  # find-qps's defaults: a submission's lengths
AFTER_SEARCH_S = 90.0  # the +10 % run's start and drain (70 s above the knee in a rehearsal), find-qps's overshoot
EXIT_MET, EXIT_NOT_MET, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
OWNED = ("--workers", "--dataset", "--scenario", "--output", "--probe-duration-ms", "--confirm-duration-ms",
         "--offline-samples", "--budget-s", "--force-output-tokens", "--harness-arg")


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (python -m harness.perf.find_qps_check --help lists the flags)\n")


def build_parser() -> Parser:
    p = Parser(prog="python -m harness.perf.find_qps_check", description=__doc__.splitlines()[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--engine", choices=engine_names(), default="vllm")
    p.add_argument("--model", required=True, help="model directory (sim: any name)")
    p.add_argument("--worker-arg", action="append", default=[], metavar="ARG", help="a worker flag (repeat)")
    p.add_argument("--dataset", default=None, help="cnn_eval.json-format file (default: --prompts synthetic ones)")
    p.add_argument("--prompts", type=int_in(1), default=2000, help="synthetic prompts (default 2000)")
    p.add_argument("--scenario", choices=("Server", "Interactive"), default="Server")
    p.add_argument("--probe-duration-ms", type=int_in(1), default=6000, help="find-qps probes (default 6000)")
    p.add_argument("--confirm-duration-ms", type=int_in(1), default=60000,
                   help="also +10 %% and grid runs (default 60000: find-qps's 60 s and 600 s, both / 10)")
    p.add_argument("--offline-samples", type=int_in(1), default=1000, help="find-qps's Offline bound (default 1000)")
    p.add_argument("--budget-s", type=int_in(1), default=330, help="find-qps's --budget-s (default 330)")
    p.add_argument("--deadline-s", type=int_in(1), default=560, help="end by then (find-qps's budget shrinks)")
    p.add_argument("--warmup", type=int_in(0), default=64, help="prompts of the untimed warm-up (0: none)")
    p.add_argument("--force-output-tokens", action="store_true", help="every sample max tokens (dummy weights)")
    p.add_argument("--harness-arg", action="append", default=[], metavar="ARG", help="flag for every harness run")
    p.add_argument("--find-qps-arg", action="append", default=[], metavar="ARG", help="a find-qps flag (repeat)")
    p.add_argument("--ready-timeout-s", type=int_in(1), default=300, help="worker start limit (default 300)")
    p.add_argument("--commit", type=commit_arg, default=None,
                   help="the commit measured (default: this checkout's, -dirty with changes, or the install's stamp)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--workdir", default=None, help="run directories (default: a new temporary folder)")
    p.add_argument("--quiet", action="store_true")
    return p


def grid_steps(upper: float, qps: float, step: float = STEP) -> tuple[int, float | None]:
    """Runs of a grid walking down from `upper` in steps of step x upper to the first step at or below
    `qps` (that one included), and that step's rate; (every step, None) when no step is that low."""
    count = int(round(1 / step))
    for k in range(count):
        rate = upper * (1 - k * step)
        if rate <= qps * (1 + 1e-9):
            return k + 1, rate
    return count, None


def grid_estimate(upper: float, found: float, plus_invalid: bool, run_s: float, overhead_s: float) -> dict:
    """The walk down (the goal's grid) and, for comparison, a walk up from the lowest step to the first
    step above the found value's (that one INVALID)."""
    runs, rate = grid_steps(upper, found)
    fewest = grid_steps(upper, PLUS * found * (1 - 1e-6))[0] if plus_invalid else None
    count, cost = int(round(1 / STEP)), run_s + overhead_s
    up = 1 if rate is None else count - runs + 1 + (runs > 1)
    return {"runs": runs, "step_qps": rate, "run_s": run_s, "overhead_s": overhead_s, "estimate_s": runs * cost,
            "full_runs": count, "full_s": count * cost,
            "fewest_runs": fewest, "fewest_s": fewest * cost if fewest else None, "up_runs": up, "up_s": up * cost,
            "how": f"{runs} run(s) x ({run_s:g} s + {overhead_s:.1f} s overhead): 5 % steps of the Offline bound "
                   f"{upper:.3f} qps from the top down to the found value's step"
                   + (f"; fewest {fewest} (first step below found x {PLUS:.2f}, INVALID)" if fewest else "")
                   + f"; walking up from the lowest step instead: {up}"}


def full_length(probes: list[dict], probe_ms: int, confirm_ms: int) -> float:
    """find-qps's runs projected to a submission's lengths (probes of FULL_PROBE_S, the confirm
    FULL_CONFIRM_S): each run scaled by the same factor as its kind's base length, so an escalated
    probe or repeat keeps its multiple of the base probe; each run's own overhead kept."""
    base = {"probe": (probe_ms, FULL_PROBE_S), "repeat": (probe_ms, FULL_PROBE_S),
            "confirm": (confirm_ms, FULL_CONFIRM_S)}
    total = 0.0
    for p in probes:
        if p["kind"] not in base:
            total += p["wall_s"]
            continue
        measured_ms, full_s = base[p["kind"]]
        total += p["duration_ms"] / measured_ms * full_s + p["wall_s"] - p["duration_ms"] / 1000
    return total


def device_of(run_dir: str) -> str:
    """The GPU the worker ran on as its run's manifest tells it: the engine's torch.cuda name (vLLM), else
    NVML's; a simulated worker is "cpu/sim"."""
    worker = (json.loads((pathlib.Path(run_dir) / "manifest.json").read_text()).get("workers") or [{}])[0]
    if worker.get("simulated"):
        return "cpu/sim"
    return (worker.get("engine_args", {}).get("device_name") or worker.get("versions", {}).get("node.gpu")
            or "unknown")


def search_budget(args, elapsed_s: float) -> int:
    """find-qps's --budget-s: the asked one, or less so that the search and the +10 % run end by --deadline-s."""
    left = args.deadline_s - elapsed_s - args.confirm_duration_ms / 1000 - AFTER_SEARCH_S
    if left < 1:
        raise RuntimeError(f"--deadline-s {args.deadline_s}: {elapsed_s:.0f} s gone before find-qps, no time left "
                           f"for it and a {args.confirm_duration_ms / 1000:g} s run")
    return int(min(args.budget_s, left))


def check_args(args) -> int:
    for arg in args.find_qps_arg:
        if arg.split("=")[0] in OWNED:
            raise ValueError(f"--find-qps-arg {arg}: the check sets {arg.split('=')[0]} itself (use its own flag)")
    if args.engine != "sim" and not pathlib.Path(args.model).is_dir():
        raise ValueError(f"--model {args.model}: not a directory")
    try:
        return len(load_dataset(args.dataset)) if args.dataset else args.prompts
    except DatasetError as exc:
        raise ValueError(f"--dataset {exc}") from None


def server_run(args, address: str, dataset: pathlib.Path, samples: int, qps: float, work: pathlib.Path) -> dict:
    conf = submission_server_user_conf(SCENARIOS[args.scenario].default_model_name, qps, args.confirm_duration_ms,
                                       samples, f"python -m harness.perf.find_qps_check: the run at found x {PLUS}")
    start = time.monotonic()
    run_dir, results = run_harness([address], dataset, samples, args.scenario, work, qps, args.harness_arg,
                                   conf_text=conf, output=work / "runs", force_output_tokens=args.force_output_tokens)
    metrics = summary_metrics(results)
    return {"qps": qps, "validity": str(results.get("result_validity", "MISSING")), "run_dir": str(run_dir),
            "ttft_p99_ms": metrics["ttft_p99_ms"] or 0.0, "tpot_p99_ms": metrics["tpot_p99_ms"] or 0.0,
            "duration_ms": args.confirm_duration_ms, "wall_s": round(time.monotonic() - start, 2)}


def summarize(report: dict, state: dict, plus: dict | None, args) -> None:
    result, probes = state["result"], state["probes"]
    confirm = (result.get("confirm") or {}).get("validity")
    report.update(found_qps=result.get("found_qps"), upper_qps=result.get("upper_qps"), stopped=result.get("stopped"),
                  best_pass_qps=result.get("best_pass_qps"), best_pass_ms=result.get("best_pass_ms"),
                  escalations=result.get("escalations"), margin=result.get("margin"), confirm_verdict=confirm,
                  find_qps_runs_s=result.get("spent_s"), plus_10=plus,
                  probes=[{k: p[k] for k in ("kind", "qps", "duration_ms", "wall_s", "ratio", "validity",
                                             "ttft_p99_ms", "tpot_p99_ms", "samples_per_s")} for p in probes])
    if plus is None or not result.get("found_qps"):
        return
    report["within_5pct"] = confirm == "VALID" and plus["validity"] == "INVALID"
    long_runs = [p for p in probes if p["kind"] == "confirm"] + [plus]
    overheads = [round(p["wall_s"] - p["duration_ms"] / 1000, 2) for p in long_runs]
    overhead, run_s = statistics.median(overheads), args.confirm_duration_ms / 1000
    grid = grid_estimate(result["upper_qps"], result["found_qps"], plus["validity"] == "INVALID", run_s, overhead)
    report["grid"] = dict(grid, overheads_s=overheads)
    wall = report["find_qps_wall_s"]
    report.update(ratio_full_grid=wall / grid["full_s"], ratio=wall / grid["estimate_s"],
                  ratio_fewest=wall / grid["fewest_s"] if grid["fewest_s"] else None,
                  ratio_walk_up=wall / grid["up_s"], goal_ratio=GOAL_RATIO)
    report["ratio_met"] = report["ratio_full_grid"] <= GOAL_RATIO
    full = full_length(probes, args.probe_duration_ms, args.confirm_duration_ms)
    projected = grid_estimate(result["upper_qps"], result["found_qps"], False, FULL_CONFIRM_S, overhead)
    full_grid, walk_down = projected["full_s"], projected["estimate_s"]
    report["projection_600s"] = {"find_qps_s": round(full, 1), "grid_s": round(full_grid, 1), "ratio": full / full_grid,
                                 "walk_down_s": round(walk_down, 1), "ratio_walk_down": full / walk_down,
                                 "how": f"not measured: these runs, {FULL_PROBE_S:g}-s probes, {FULL_CONFIRM_S:g} s else"}


def write(report: dict, out: pathlib.Path) -> pathlib.Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"find-qps-check-{device_slug(report['gpu'])}-{revision_tag(report['commit'])}.json"
    path.write_text(json.dumps(report, indent=2))
    return path


def measure(args, samples: int, work: pathlib.Path, report: dict, t0: float) -> int:
    dataset = pathlib.Path(args.dataset) if args.dataset else work / f"synthetic-{samples}.json"
    if not args.dataset:
        dataset.write_text(json.dumps(synthetic_records(samples, 0)))
    started = time.monotonic()
    worker = WorkerProcess(WorkerSpec(args.engine, args.model, engine_args=tuple(args.worker_arg)),
                           work / "worker.log", die_with_parent_signal=signal.SIGTERM)
    try:
        address = worker.wait_ready(started + args.ready_timeout_s)
        report["worker_start_s"] = round(time.monotonic() - started, 1)
        print(f"worker {address} ready in {report['worker_start_s']} s (pid {worker.process.pid})", flush=True)
        if args.warmup:
            warm = work / "warmup.json"  # other prompts: no prefix-cache hits for the runs that count
            warm.write_text(json.dumps(synthetic_records(args.warmup, 1)))
            t = time.monotonic()
            run_harness([address], warm, args.warmup, "Offline", work, extra=args.harness_arg,
                        force_output_tokens=args.force_output_tokens)
            report["warmup_s"] = round(time.monotonic() - t, 1)
        out = work / "find-qps"
        report["durations"]["budget_s"] = budget = search_budget(args, time.monotonic() - t0)
        command = [sys.executable, "-m", "harness", "find-qps", "--workers", address, "--dataset", str(dataset),
                   "--scenario", args.scenario, "--output", str(out), "--budget-s", str(budget),
                   "--probe-duration-ms", str(args.probe_duration_ms), "--confirm-duration-ms",
                   str(args.confirm_duration_ms), "--offline-samples", str(args.offline_samples),
                   *(["--force-output-tokens"] if args.force_output_tokens else []), *args.find_qps_arg,
                   *[f"--harness-arg={a}" for a in args.harness_arg], *(["--quiet"] if args.quiet else [])]
        report["find_qps_command"] = shlex.join(command[1:])
        t = time.monotonic()
        code = subprocess.run(command).returncode
        report.update(find_qps_wall_s=round(time.monotonic() - t, 2), find_qps_exit=code)
        if code not in (0, 1):
            raise RuntimeError(f"find-qps exited {code}; its runs are under {out}")
        state = json.loads((out / "find-qps.json").read_text())
        if not state["probes"] or not state.get("result"):
            raise RuntimeError(f"find-qps ran nothing (see {out}); raise --budget-s")
        report["gpu"] = device_of(state["probes"][0]["run_dir"])
        summarize(report, state, None, args)
        path = write(report, pathlib.Path(args.out))
        for table in (out / "find-qps.md", out / "find-qps.svg"):  # find-qps's own table and plot, beside the JSON
            if table.is_file():
                shutil.copy(table, path.with_suffix(".probes" + table.suffix))
        found = state["result"].get("found_qps")
        if not found:
            print(f"find-qps found no rate ({state['result'].get('stopped')}); {path}")
            return EXIT_NOT_MET
        plus = server_run(args, address, dataset, samples, round(found * PLUS, 3), work)
    finally:
        worker.stop()
        worker.send_signal(signal.SIGKILL)  # what is left of its group (vLLM's engine core) goes too
    summarize(report, state, plus, args)
    report["total_wall_s"] = round(time.monotonic() - t0, 1)
    path = write(report, pathlib.Path(args.out))
    r, g = report, report["grid"]
    print(f"{r['gpu']}: found {found} qps (Offline {r['upper_qps']:.3f}); confirm {r['confirm_verdict']}, x{PLUS:.2f} "
          f"{plus['validity']}: within 5 % {r['within_5pct']}\nfind-qps {r['find_qps_wall_s']:.0f} s; the grid of every "
          f"5 % step {g['full_s']:.0f} s: ratio {r['ratio_full_grid']:.3f} (goal <= {GOAL_RATIO}; 600 s projected "
          f"{r['projection_600s']['ratio']:.3f}); walking down {g['estimate_s']:.0f} s ({g['how']}): ratio "
          f"{r['ratio']:.3f} (600 s projected {r['projection_600s']['ratio_walk_down']:.3f})\n-> {path}")
    return EXIT_MET if report["within_5pct"] and report["ratio_met"] else EXIT_NOT_MET


def main(argv: list[str] | None = None) -> int:
    t0, argv = time.monotonic(), list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        samples = check_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    work = pathlib.Path(args.workdir) if args.workdir else pathlib.Path(tempfile.mkdtemp(prefix="find-qps-check-"))
    work.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's SIGTERM still stops the worker
    report = {"commit": args.commit or git_commit(), "gpu": "unknown", "engine": args.engine, "model": args.model,
              "worker_args": args.worker_arg, "scenario": args.scenario, "samples": samples,
              "command": shlex.join(["python", "-m", "harness.perf.find_qps_check", *argv]),
              "durations": {"probe_ms": args.probe_duration_ms, "repeat_ms": 2 * args.probe_duration_ms,  # before any escalation
                            "confirm_ms": args.confirm_duration_ms, "grid_run_ms": args.confirm_duration_ms,
                            "offline_samples": args.offline_samples, "budget_s": args.budget_s,
                            "scaled_from": f"probe {FULL_PROBE_S:g} s, confirm {FULL_CONFIRM_S:g} s"},
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "workdir": str(work)}
    try:
        return measure(args, samples, work, report, t0)
    except (LaunchError, RuntimeError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"interrupted; the worker is stopped, runs so far under {work}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
