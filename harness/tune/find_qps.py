"""`python -m harness find-qps`: the highest Server (or Interactive) target_qps that is VALID.

1. Upper bound: the Offline rate (a short Offline run, or --offline-qps): a Server run can't beat it.
2. Short probes (--probe-duration-ms) bracket and narrow the knee. A probe passes when its p99 TTFT
   and p99 TPOT are within the benchmark's limits (LoadGen's early stopping can't be met by a short
   run: its advice is kept in the table). The next rate comes from a model of latency vs load: the
   headroom 1/r (r = the larger of p99/limit for TTFT and TPOT) falls linearly to 0 at saturation,
   as in a queue; interpolated between the best pass and the lowest fail above it (the Offline rate
   with headroom 0 until a fail is seen), kept 10 % inside the bracket, and a plain bisection when
   the last two probes fell on the same side. It stops when the bracket is within --tolerance.
3. The best pass is probed again, twice as long, and the model is extended to run length: in an
   overloaded queue the wait grows linearly with time, so the knee of a run of length T is about
   mu + c/T. The repeat measures the knee's fall from the probe's length to its own (the headroom
   lost, over the local slope of headroom vs rate); the knee at the confirm's length follows, and is
   the rate chosen, at least --min-margin below the best pass (`knee_margin`). With --escalate a
   repeat over the limits is a fail at twice the length instead, and the search goes on with probes
   of that length (up to half the confirming run); what counts at a length: fails of that length or
   shorter, passes of that length only; with none yet, the highest shorter pass at least
   --tolerance below the lowest fail is probed again first (else half that fail).
4. A confirming run at the chosen rate with a submission's settings (mlperf.conf, min_duration
   --confirm-duration-ms, default 600000): LoadGen must say VALID with no errors; if not, the next
   attempt (--confirm-attempts) is 5 % lower, or where the slope through its r puts the knee.
Every probe is a normal harness run directory under OUTPUT/runs; find-qps.json is written after each;
a re-run with the same --output replays what is stored and goes on. Ctrl-C stops cleanly.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from harness.artifacts.dataset import DatasetError, load_dataset
from harness.tune import report
from harness.tune.knee import headroom_slope, knee_margin, next_target, retry_rate
from harness.tune.live import Live
from harness.tune.probe import Probe, Runner, confirm_conf, latency_limit, model_name_of, offline_conf, server_conf
from harness.tune.state import State, StateError

EXIT_OK, EXIT_NOT_FOUND, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class InputError(ValueError):
    pass


class OutOfBudget(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness find-qps", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--workers", required=True, help="HOST:PORT[,HOST:PORT...] of running workers")
    p.add_argument("--dataset", required=True, help="cnn_eval.json-format file")
    p.add_argument("--scenario", choices=("Server", "Interactive"), default="Server")
    p.add_argument("--output", default="find-qps", help="folder of the state file, runs, table and plot")
    p.add_argument("--offline-qps", type=float, default=None, help="upper bound (default: a short Offline run)")
    p.add_argument("--offline-samples", type=int, default=1000, help="samples of the Offline run (default 1000)")
    p.add_argument("--probe-duration-ms", type=int, default=60000, help="min_duration of a probe (default 60000)")
    p.add_argument("--probe-min-queries", type=int, default=100, help="min_query_count of a probe (default 100)")
    p.add_argument("--confirm-duration-ms", type=int, default=600000,
                   help="min_duration of the confirming run (default 600000, a submission's)")
    p.add_argument("--confirm-attempts", type=int, default=3,
                   help="confirming runs at most, each lower after an INVALID one (default 3)")
    p.add_argument("--no-confirm", action="store_true", help="stop after the search (no confirming run)")
    p.add_argument("--tolerance", type=float, default=0.03, help="stop when the bracket is this narrow (default 0.03)")
    p.add_argument("--margin", type=float, default=None, help="fraction below the best pass (default: from the knee model)")
    p.add_argument("--min-margin", type=float, default=0.02)
    p.add_argument("--escalate", action="store_true",
                   help="a repeat over the limits doubles the probe length instead of giving the margin at once")
    p.add_argument("--max-probes", type=int, default=12,
                   help="search probes and their longer repeats at most (default 12)")
    p.add_argument("--budget-s", type=float, default=7200.0,
                   help="wall seconds of all runs at most, the confirming run included (default 7200)")
    p.add_argument("--samples", type=int, default=None, help="use the first N records (default: all)")
    p.add_argument("--force-output-tokens", action="store_true", help="probes force max tokens (benchmark only)")
    p.add_argument("--harness-arg", action="append", default=[], metavar="ARG",
                   help="extra flag for every harness run (repeat; e.g. --harness-arg=--auth-token-file=F)")
    p.add_argument("--quiet", action="store_true")
    return p


def check_args(args) -> None:
    for flag in ("probe_duration_ms", "confirm_duration_ms", "max_probes", "offline_samples", "confirm_attempts"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 1")
    if args.offline_qps is not None and args.offline_qps <= 0:
        raise InputError(f"--offline-qps {args.offline_qps}: must be > 0")
    if not 0 < args.tolerance < 0.5:
        raise InputError(f"--tolerance {args.tolerance}: must be between 0 and 0.5")
    for flag in ("margin", "min_margin"):
        value = getattr(args, flag)
        if value is not None and not 0 <= value < 0.5:
            raise InputError(f"--{flag.replace('_', '-')} {value}: must be in [0, 0.5)")
    if args.budget_s <= 0:
        raise InputError(f"--budget-s {args.budget_s}: must be > 0")
    if not [a for a in args.workers.split(",") if a.strip()]:
        raise InputError("--workers: no address given")


def counted_at(runs: list[Probe], length_ms: int) -> list[Probe]:
    """The search probes and repeats that count at probe length `length_ms`: every fail at that length or
    shorter (near saturation latency only grows with run length) and passes measured at that length."""
    return [p for p in runs if p.duration_ms <= length_ms and (not p.within_limits or p.duration_ms == length_ms)]


def next_probe(upper: float, runs: list[Probe], length_ms: int, tolerance: float) -> float | None:
    """`next_target` on what counts at this length; after an escalation, while nothing passes at it,
    first the highest shorter-length pass at least `tolerance` below the lowest fail, probed again."""
    counted = counted_at(runs, length_ms)
    fails = [p.qps for p in counted if not p.within_limits]
    if fails and len(fails) == len(counted):
        below = [p.qps for p in runs if p.within_limits and p.duration_ms < length_ms
                 and p.qps <= min(fails) * (1 - tolerance)]
        if below:
            return max(below)
    return next_target(upper, counted, tolerance)


def best_pass(runs: list[Probe]) -> Probe | None:
    """The highest search pass at the longest length that has one, unless a longer run failed at or
    below its rate (then it was a short run's optimism, not a pass)."""
    passes = [p for p in runs if p.kind == "probe" and p.within_limits]
    for length in sorted({p.duration_ms for p in passes}, reverse=True):
        ceiling = min((p.qps for p in runs if not p.within_limits and p.duration_ms > length), default=float("inf"))
        trusted = [p for p in passes if p.duration_ms == length and p.qps < ceiling]
        if trusted:
            return max(trusted, key=lambda p: p.qps)
    return None


class Search:
    def __init__(self, args, state: State, runner: Runner, live: Live):
        self.args, self.state, self.runner, self.live = args, state, runner, live
        self.n = 0

    def spent(self) -> float:
        return sum(p.wall_s for p in self.state.probes())

    def overhead(self) -> float:
        done = [p.wall_s - p.duration_ms / 1000 for p in self.state.probes() if p.kind != "offline"]
        return max(done) if done else 10.0

    def cost(self, duration_ms: int) -> float:
        return duration_ms / 1000 + self.overhead()

    def get(self, probe: Probe, scenario: str, conf: str, reserve_s: float = 0.0) -> Probe:
        cached = self.state.replay(probe)
        self.n += 1
        what = f"{probe.kind} {probe.qps:.3f} qps" if probe.kind != "offline" else "Offline upper bound"
        if probe.kind in ("probe", "repeat"):
            what += f" for {probe.duration_ms / 1000:g} s"
        if cached is None:
            estimate = self.cost(probe.duration_ms)
            if self.spent() + estimate + reserve_s > self.args.budget_s:
                raise OutOfBudget(f"{what} (~{estimate:.0f} s) does not fit the budget")
            self.live.starting(self.n, what, self.spent(), estimate)
            probe = self.runner.run(probe, scenario, conf)
            self.state.record(probe)
        else:
            probe = cached
        self.live.done(report.probe_line(probe), self.best_text(), replayed=cached is not None)
        return probe

    def best_text(self) -> str:
        best = best_pass(self.state.probes())
        return f"{best.qps:.3f} qps ({best.duration_ms / 1000:g} s)" if best else "none yet"

    def server_probe(self, kind: str, qps: float, length_ms: int, reserve_s: float) -> Probe:
        args = self.args
        conf = server_conf(args.scenario, qps, length_ms, self.runner.samples, args.probe_min_queries)
        return self.get(Probe(kind, round(qps, 3), length_ms), args.scenario, conf, reserve_s=reserve_s)

    def confirm_reserve(self) -> float:
        """What the confirming run will cost, priced at each check with the overhead measured so far (a
        price fixed before the first Server run used the 10-s default and let the search spend it)."""
        return 0.0 if self.args.no_confirm else self.cost(self.args.confirm_duration_ms)

    def search(self, upper: float, result: dict) -> tuple[list[Probe], Probe | None, Probe | None]:
        """Probes at the current length until the bracket is narrow, then the best pass again for twice
        as long: a pass ends the search, a fail doubles the length (escalation) up to half the confirming
        run. Returns every search probe and repeat, the best pass and its repeat (None where not run)."""
        args, runs = self.args, []
        length, cap = args.probe_duration_ms, max(args.probe_duration_ms, args.confirm_duration_ms // 2)
        escalations = result["escalations"]
        try:
            while True:
                target = next_probe(upper, runs, length, args.tolerance)
                if target is None:
                    passes = [p for p in runs if p.within_limits and p.duration_ms == length]
                    if not passes:
                        result["stopped"] = ("nothing within the limits" if best_pass(runs) is None
                                             else f"nothing within the limits at {length / 1000:g} s")
                        break
                    best = max(passes, key=lambda p: p.qps)
                    repeat = self.repeat(best, runs)
                    if repeat is None or repeat.within_limits:
                        return runs, best, repeat
                    if not args.escalate:
                        result["repeat_over"] = (
                            f"the {2 * length / 1000:g} s repeat at {best.qps:.3f} qps is over the limits (r "
                            f"{repeat.ratio:.3f}): the knee model takes the margin from it (--escalate would probe "
                            f"for {2 * length / 1000:g} s instead)")
                        return runs, best, repeat
                    if 2 * length > cap:
                        result["escalation_capped"] = (
                            f"the {2 * length / 1000:g} s repeat at {best.qps:.3f} qps is over the limits (r "
                            f"{repeat.ratio:.3f}), but probes longer than {cap / 1000:g} s (half of "
                            f"--confirm-duration-ms) are not made: the margin comes from this repeat")
                        return runs, best, repeat
                    escalations.append({"at_qps": best.qps, "from_ms": length, "to_ms": 2 * length,
                                        "r": round(repeat.ratio, 4)})
                    self.live.note(f"escalation: {best.qps:.3f} qps passed in {length / 1000:g} s but not in "
                                   f"{2 * length / 1000:g} s (r {repeat.ratio:.3f}); probes are now "
                                   f"{2 * length / 1000:g} s long")
                    length *= 2
                    continue
                if len(runs) >= args.max_probes - 1:  # one is kept for the repeat
                    result["stopped"] = f"--max-probes {args.max_probes}"
                    break
                runs.append(self.server_probe("probe", target, length, self.confirm_reserve() + self.cost(2 * length)))
        except OutOfBudget as exc:
            result["stopped"] = f"--budget-s: {exc}"
        best = best_pass(runs)
        if best is None or len(runs) >= args.max_probes:
            return runs, best, None
        return runs, best, self.repeat(best, runs)

    def repeat(self, best: Probe, runs: list[Probe]) -> Probe | None:
        """`best` again for twice its length, appended to `runs`; None when that does not fit the budget."""
        try:
            repeat = self.server_probe("repeat", best.qps, 2 * best.duration_ms, self.confirm_reserve())
        except OutOfBudget as exc:
            self.live.note(f"no noise repeat: {exc}")
            return None
        runs.append(repeat)
        return repeat

    def run(self) -> dict:
        args, scenario = self.args, self.args.scenario
        upper = args.offline_qps
        if upper is None:
            n = min(self.runner.samples, args.offline_samples)
            upper = self.get(Probe("offline", 0.0, 0), "Offline", offline_conf(n)).samples_per_s
        result = {"scenario": scenario, "upper_qps": upper, "stopped": "converged", "escalations": []}
        runs, best, repeat = self.search(upper, result)
        result.update(probes_used=sum(p.kind == "probe" for p in runs),
                      probe_ms=max((p.duration_ms for p in runs if p.kind == "probe"), default=args.probe_duration_ms))
        if best is None:
            return dict(result, found_qps=None)
        same_length = [p for p in runs if p.duration_ms == best.duration_ms]
        margin, why = ((args.margin, "--margin") if args.margin is not None else
                       knee_margin(best, repeat, same_length, args.confirm_duration_ms, args.min_margin))
        chosen = round(best.qps * (1 - margin), 3)
        result.update(best_pass_qps=best.qps, best_pass_ms=best.duration_ms, margin=margin, margin_reason=why,
                      found_qps=chosen, confirm=None)
        if not args.no_confirm:
            self.confirm(chosen, margin, headroom_slope(best, same_length), result)
        return result

    def confirm(self, chosen: float, margin: float, slope: float | None, result: dict) -> None:
        args, scenario = self.args, self.args.scenario
        failed: list[Probe] = []
        for _ in range(args.confirm_attempts):
            conf = confirm_conf(scenario, chosen, args.confirm_duration_ms, self.runner.samples)
            try:
                confirm = self.get(Probe("confirm", chosen, args.confirm_duration_ms), scenario, conf)
            except OutOfBudget as exc:
                not_run = {"qps": chosen, "validity": "NOT RUN", "reason": str(exc)}
                if result["confirm"] is None:
                    result["confirm"] = not_run
                else:  # the verdict that was measured stays; the next, lower attempt did not fit
                    result["confirm"]["next"] = not_run
                break
            result.update(found_qps=chosen, confirm={"validity": confirm.validity, "run_dir": confirm.run_dir,
                                                     "early_stopping": confirm.early_stopping})
            if confirm.valid:
                break
            if failed and confirm.ratio > 1 and failed[-1].ratio > 1 and failed[-1].qps > confirm.qps:
                slope = headroom_slope(confirm, failed[-1:]) or slope  # measured at the confirm's own length
            failed.append(confirm)
            chosen, why = retry_rate(confirm, margin, slope, args.min_margin)
            result.setdefault("retries", []).append({"after_qps": confirm.qps, "next_qps": chosen, "why": why})


def state_settings(args) -> dict:
    """What a resumed search must share with the stored one."""
    settings = {k: getattr(args, k) for k in ("scenario", "dataset", "samples", "offline_qps", "offline_samples",
                                              "probe_duration_ms", "probe_min_queries", "confirm_duration_ms",
                                              "tolerance", "margin", "min_margin", "force_output_tokens")}
    if args.escalate:  # only when on: a state file from before the flag resumes without it
        settings["escalate"] = True
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        dataset = load_dataset(pathlib.Path(args.dataset), args.samples)
        out = pathlib.Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        state = State(out / "find-qps.json", state_settings(args))
    except (InputError, DatasetError, StateError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    addresses = [a.strip() for a in args.workers.split(",") if a.strip()]
    runner = Runner(addresses, dataset.path, len(dataset), out, args.harness_arg, args.force_output_tokens)
    live = Live(f"find-qps {args.scenario}", args.max_probes, args.budget_s, args.quiet)
    if state.resumed:
        live.note(f"resuming from {state.path}: {state.resumed} finished probe(s) are replayed, not run")
    search = Search(args, state, runner, live)
    try:
        result = search.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(state.probes())} finished probe(s) kept in {state.path}; run the same command "
              f"to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as exc:
        print(f"error: a probe failed: {exc}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED
    result.update(replayed=state.replayed, spent_s=round(search.spent(), 1),
                  user_conf_line=(f"{model_name_of(args.scenario)}.Server.target_qps = {result['found_qps']}"
                                  if result.get("found_qps") else None))
    state.set(result=result)
    limit = latency_limit(args.scenario)
    report.write(out, state.probes(), result, limit, live.console)
    if not result.get("found_qps"):
        return EXIT_NOT_FOUND
    confirm = result.get("confirm")
    return EXIT_OK if confirm is None or confirm.get("validity") == "VALID" else EXIT_NOT_FOUND
