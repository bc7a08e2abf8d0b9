"""The tune search over a space (space.py): the running workers, one probe, and the two strategies.

Coordinate search with pruning, in `search_order` (expected gain per probe, dispatch last): from the
start point each setting in turn is moved one value at a time, away from the current best while
that improves tokens/s by more than the noise; a value no better stops the walk in that direction,
and a step up that helped skips the step down (one peak per setting, as throughput vs batch size
has). Passes repeat until one changes nothing.
Noise: every worker start is followed by an untimed warm-up run (a fresh process, or new settings,
JIT-compiles and autotunes on its first batches; the first GPU probe was 2.7 % below its warm
repeat), so every timed run is warm. The noise is measured only when a decision needs it (a change
within CLEAR of the best), by repeating that probe on the worker already running it (no restart).
Budget: a probe whose estimated cost (costs.py) does not fit in what is left of --budget-s is
skipped, said in the log and in tune.json, and the search goes on with what still fits (dispatch
settings need no restart)."""
from __future__ import annotations

import itertools
import json
import pathlib
import time

from harness.tune import costs
from harness.tune.probe import Probe, Runner, offline_conf
from harness.tune.space import harness_flags, search_order, start_point, worker_flags
from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec

# a change of tokens/s larger than this is taken without measuring the noise: about twice the largest
# run-to-run difference seen on a GPU (2.7 %, and that one a cold run against a warm one)
CLEAR = 0.05


class Workers:
    """The running workers and the flags they run with; a change of flags is a restart."""

    def __init__(self, args, out: pathlib.Path, base: list[str]):
        self.args, self.out, self.base = args, out, base
        self.flags: list[str] | None = None
        self.procs: list[WorkerProcess] = []
        self.restarts = 0

    def needs_restart(self, flags: list[str]) -> bool:
        return flags != self.flags or not all(p.running for p in self.procs)

    def ensure(self, flags: list[str]) -> list[str]:
        if not self.needs_restart(flags):
            return [p.address for p in self.procs]
        self.stop()
        self.restarts += 1
        gpus = (self.args.gpus or "0").split(",") if self.args.engine == "vllm" else [None] * self.args.workers_count
        self.procs = [WorkerProcess(WorkerSpec(self.args.engine, self.args.model, engine_args=tuple(self.base + flags),
                                               env={"CUDA_VISIBLE_DEVICES": g} if g else {}),
                                    self.out / f"worker-{i}-{self.restarts}.log") for i, g in enumerate(gpus)]
        self.flags = flags
        deadline = time.monotonic() + (900 if self.args.engine == "vllm" else 60)
        return [p.wait_ready(deadline) for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
        self.procs, self.flags = [], None


class Tuner:
    def __init__(self, args, space: dict, state, workers: Workers, subset: pathlib.Path, n: int, live):
        self.args, self.space, self.state, self.workers, self.live = args, space, state, workers, live
        self.subset, self.n, self.count = subset, n, 0
        self.results: dict[str, float | None] = {}
        self.threshold: float | None = None  # set once the noise is measured
        self.noise: dict | None = None  # what was measured, or why it was not (tried once)
        self.skipped: list[dict] = []

    def spent(self) -> float:
        return sum(p.wall_s for p in self.state.probes())

    def evaluate(self, config: dict, kind: str = "tune") -> float | None:
        """tokens/s of `config` (replayed when an earlier run finished it), None when skipped."""
        key = json.dumps(config, sort_keys=True)
        if kind == "tune" and key in self.results:
            return self.results[key]
        probe = Probe(kind, 0.0, 0, config=dict(config))
        cached = self.state.replay(probe)
        replayed = cached is not None
        if cached is None:
            if self.count >= self.args.max_probes:
                raise StopIteration(f"--max-probes {self.args.max_probes}")
            flags = worker_flags(config, self.space)
            cost = costs.estimate(self.args.engine, self.state.probes(), self.workers.needs_restart(flags))
            left = self.args.budget_s - self.spent()
            if cost.total_s > left:
                self.skip(config, kind, cost, left)
                if kind == "tune":
                    self.results[key] = None
                return None
            self.count += 1
            self.live.starting(self.count, describe(config, kind), self.spent(), cost.total_s)
            cached = self.probe(probe, config, flags)
            self.state.record(cached)
        else:
            self.count += 1
        if kind == "tune":
            self.results[key] = cached.tokens_per_s
        best = max((v for v in self.results.values() if v), default=0.0)
        restart = (f", restart {cached.restart_s:.0f} s incl. warm-up {cached.warmup_s:.0f} s"
                   if cached.restart_s else "")
        self.live.done(f"{cached.tokens_per_s:.0f} tokens/s ({cached.validity or 'ok'}, {cached.wall_s:.0f} s"
                       f"{restart})", f"{best:.0f} tokens/s", replayed=replayed)
        return cached.tokens_per_s

    def skip(self, config: dict, kind: str, cost: costs.Estimate, left: float) -> None:
        why = f"needs {cost.describe()}, {max(left, 0):.0f} s of --budget-s {self.args.budget_s:g} left"
        self.skipped.append({"config": dict(config), "kind": kind, "estimate_s": round(cost.total_s, 1),
                             "restart_s": round(cost.restart_s, 1), "run_s": round(cost.run_s, 1),
                             "left_s": round(left, 1), "why": why})
        self.state.set(skipped=self.skipped)
        self.live.note(f"[yellow]skipped[/] {describe(config, kind)}: {why}")

    def probe(self, probe: Probe, config: dict, flags: list[str]) -> Probe:
        start = time.monotonic()
        extra = ["--max-new-tokens", str(self.args.max_new_tokens), *harness_flags(config, self.space)]
        try:
            restart = self.workers.needs_restart(flags)
            addresses = self.workers.ensure(flags)
            runner = Runner(addresses, self.subset, self.n, self.workers.out, self.args.harness_arg, True)
            if restart and self.args.warmup:
                warm = time.monotonic()
                runner.run(Probe("warmup", 0.0, 0), "Offline", offline_conf(min(self.args.warmup, self.n)), extra)
                probe.warmup_s = round(time.monotonic() - warm, 2)
            probe.restart_s = round(time.monotonic() - start, 2) if restart else 0.0
            probe = runner.run(probe, "Offline", offline_conf(self.n), extra)
        except (LaunchError, RuntimeError) as exc:
            self.workers.stop()
            probe.validity = f"FAILED: {str(exc).splitlines()[0][:200]}"
        probe.wall_s = round(time.monotonic() - start, 2)  # the restart and the warm-up count
        return probe

    def improves(self, config: dict, tps: float | None, best: float) -> bool:
        """Better than `best` by more than the noise; a change within CLEAR first measures the noise
        by running `config` again on its warm worker."""
        if tps is None:
            return False
        if self.threshold is None and self.noise is None and abs(tps / best - 1) < CLEAR:
            again = self.evaluate(config, "noise")
            self.noise = {"not_measured": "the repeat did not fit in the budget" if again is None else
                          "the repeat failed"}  # tried once; replaced below when measured
            if again:
                noise = abs(tps - again) / ((tps + again) / 2)
                self.threshold = max(0.01, 1.5 * noise)
                self.noise = {"config": dict(config), "runs": [tps, again], "noise": round(noise, 4),
                              "threshold": round(self.threshold, 4)}
                self.state.set(noise=self.noise)
                tps = self.results[json.dumps(config, sort_keys=True)] = (tps + again) / 2
        return tps > best * (1 + (self.threshold if self.threshold is not None else CLEAR))

    def coordinate(self) -> tuple[dict, float]:
        best_cfg = start_point(self.space)
        best = self.evaluate(best_cfg)
        if not best:
            raise StopIteration(f"--budget-s {self.args.budget_s:g}: the start point does not fit"
                                if best is None else "the start point failed")
        for _ in range(3):
            changed = False
            for key in search_order(self.space):
                setting = self.space[key]
                for direction in ((1, -1) if setting.ordered else (0,)):
                    i = setting.values.index(best_cfg[key])
                    candidates = (setting.values[i + 1:] if direction == 1 else setting.values[:i][::-1]
                                  if direction == -1 else [v for v in setting.values if v != best_cfg[key]])
                    moved = False
                    for value in candidates:
                        config = dict(best_cfg, **{key: value})
                        tps = self.evaluate(config)
                        if self.improves(config, tps, best):
                            best_cfg, moved, changed = config, True, True
                            best = self.results[json.dumps(config, sort_keys=True)]  # the mean if repeated
                        elif direction:
                            break  # pruned: no better than the best by more than the noise (or skipped)
                    if moved and direction == 1:
                        break  # a step up helped: the peak is not below
            if not changed:
                break
        return best_cfg, best

    def grid(self) -> tuple[dict, float]:
        keys = sorted(self.space, key=lambda k: not self.space[k].restarts)  # dispatch innermost: fewer restarts
        best_cfg, best = None, -1.0
        for values in itertools.product(*(self.space[k].values for k in keys)):
            config = {k: v for k, v in zip(keys, values)}
            tps = self.evaluate(config)
            if tps is not None and tps > best:
                best, best_cfg = tps, config
        return best_cfg, best


def describe(config: dict, kind: str = "tune") -> str:
    text = " ".join(f"{k}={v}" for k, v in config.items())
    return f"{text} (noise repeat)" if kind == "noise" else text
