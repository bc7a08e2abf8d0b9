"""`python -m harness tune`: engine settings for the most Offline tokens/s, written as a preset.

Each probe is a short Offline harness run (every sample forced to --max-new-tokens) on a subset of
the dataset whose prompt lengths follow the dataset's (evenly spaced quantiles of length), on workers
this command starts with the probe's settings; a worker restart is part of the probe's cost.
Search: coordinate search with pruning. From the start point (the engine's defaults), each setting
in turn is moved one value at a time, away from the current best while that improves tokens/s by
more than the noise (measured by running the start point twice); a value worse than that stops the
walk in that direction, and a step up that helped skips the step down (one peak per setting, as
throughput vs batch size has). Passes repeat until one changes nothing. Dispatch settings (the
credit factor) come last in a pass: they need no restart. --grid runs every combination instead
(the baseline the coordinate search is measured against; see DESIGN.md).
"""
from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import shutil
import subprocess
import sys
import time

from harness.artifacts.dataset import DatasetError, load_dataset
from harness.tune import presets
from harness.tune.live import Live
from harness.tune.probe import Probe, Runner, offline_conf
from harness.tune.state import State, StateError
from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec
from sut.worker.preset import FORBIDDEN

# setting -> (where it goes, values in order, start value); "none" leaves the flag out
SPACES = {
    "vllm": {"max-num-seqs": ("worker", ["128", "256", "512", "1024"], "256"),
             "max-num-batched-tokens": ("worker", ["2048", "4096", "8192", "16384"], "8192"),
             "quantization": ("worker", ["none", "fp8"], "none"),
             "kv-cache-dtype": ("worker", ["auto", "fp8"], "auto"),
             "credit-factor": ("harness", ["1.0", "1.5", "2.0", "3.0"], "2.0")},
    "sim": {"max-seqs": ("worker", ["8", "16", "32", "64", "128"], "16"),
            "max-batched-tokens": ("worker", ["512", "1024", "2048", "4096", "0"], "1024"),
            "credit-factor": ("harness", ["1.0", "2.0", "3.0"], "2.0")},
}
ORDERED = {"max-num-seqs", "max-num-batched-tokens", "max-seqs", "max-batched-tokens", "credit-factor"}
EXIT_OK, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130


class InputError(ValueError):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness tune", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--engine", choices=tuple(SPACES), default="vllm")
    p.add_argument("--model", required=True, help="model directory for the workers (sim: any name)")
    p.add_argument("--dataset", required=True, help="cnn_eval.json-format file")
    p.add_argument("--output", default="tune", help="folder of tune.json, subset, runs, worker logs")
    p.add_argument("--name", default=None, help="preset name (default: ENGINE-DEVICE)")
    p.add_argument("--preset-dir", default="presets", help="where the preset is written (default ./presets)")
    p.add_argument("--gpus", default=None, help="vllm: comma list, one worker per GPU (default 0)")
    p.add_argument("--workers-count", type=int, default=1, help="sim: workers to start (default 1)")
    p.add_argument("--subset", type=int, default=1000, help="prompts per probe (default 1000)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--space", action="append", default=[], metavar="KEY=V1,V2",
                   help="values of a setting (replaces its default list; engine-arg:KEY=... adds an --engine-arg)")
    p.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                   help="flag for every worker, not tuned (repeat; e.g. --worker-arg=--load-format=dummy)")
    p.add_argument("--harness-arg", action="append", default=[], metavar="ARG", help="flag for every harness run")
    p.add_argument("--gpu-memory-gib", type=float, default=None,
                   help="vllm: memory budget per card; gpu_memory_utilization = budget / the card's memory")
    p.add_argument("--max-probes", type=int, default=30)
    p.add_argument("--budget-s", type=float, default=7200.0, help="wall seconds of all probes, restarts included")
    p.add_argument("--grid", action="store_true", help="run every combination (the baseline for the search)")
    p.add_argument("--accuracy-run", default=None, help="AccuracyOnly run directory backing an FP8 preset")
    p.add_argument("--quiet", action="store_true")
    return p


def search_space(engine: str, overrides: list[str]) -> dict:
    space = dict(SPACES[engine])
    for item in overrides:
        key, sep, values = item.partition("=")
        choices = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not choices:
            raise InputError(f"--space {item!r}: expected KEY=V1,V2,...")
        if key.startswith("engine-arg:"):
            if engine != "vllm":
                raise InputError(f"--space {item!r}: engine-arg: is for --engine vllm")
            space[key] = ("worker", choices, choices[0])
        elif key in space:
            where, _, start = space[key]
            space[key] = (where, choices, start if start in choices else choices[len(choices) // 2])
        else:
            raise InputError(f"--space {item!r}: {key} is not a setting of engine {engine} "
                             f"({', '.join(space)}, or engine-arg:KEY)")
        if key.replace("engine-arg:", "").replace("_", "-") in FORBIDDEN:
            raise InputError(f"--space {item!r}: sampling settings are fixed in the closed division")
    return space


def worker_flags(config: dict, space: dict) -> list[str]:
    flags = []
    for key, value in config.items():
        if space[key][0] != "worker" or value in ("none",):
            continue
        flags += (["--engine-arg", f"{key.split(':', 1)[1]}={value}"] if key.startswith("engine-arg:")
                  else [f"--{key}", value])
    return flags


def harness_flags(config: dict, space: dict) -> list[str]:
    return [x for key, value in config.items() if space[key][0] == "harness" for x in (f"--{key}", value)]


def representative_subset(records: list[dict], n: int) -> list[dict]:
    """n records at evenly spaced quantiles of prompt length, in the dataset's order."""
    if n >= len(records):
        return records
    by_length = sorted(range(len(records)), key=lambda i: len(records[i]["tok_input"]))
    picked = sorted({by_length[int((k + 0.5) * len(records) / n)] for k in range(n)})
    return [records[i] for i in picked]


def card_memory_gib() -> float | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
        return float(out.splitlines()[0]) / 1024 if out else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


class Workers:
    """The running workers and the flags they run with; a change of flags is a restart."""

    def __init__(self, args, out: pathlib.Path, base: list[str]):
        self.args, self.out, self.base = args, out, base
        self.flags: list[str] | None = None
        self.procs: list[WorkerProcess] = []
        self.restarts = 0

    def ensure(self, flags: list[str]) -> list[str]:
        if flags == self.flags and all(p.running for p in self.procs):
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
    def __init__(self, args, space: dict, state: State, workers: Workers, subset: pathlib.Path, n: int, live: Live):
        self.args, self.space, self.state, self.workers, self.live = args, space, state, workers, live
        self.subset, self.n, self.count = subset, n, 0
        self.results: dict[str, float] = {}

    def spent(self) -> float:
        return sum(p.wall_s for p in self.state.probes())

    def evaluate(self, config: dict) -> float:
        key = json.dumps(config, sort_keys=True)
        if key in self.results:
            return self.results[key]
        probe = Probe("tune", 0.0, 0, config=dict(config))
        cached = self.state.replay(probe)
        replayed = cached is not None
        self.count += 1
        if cached is None:
            if self.count > self.args.max_probes:
                raise StopIteration(f"--max-probes {self.args.max_probes}")
            walls = [p.wall_s for p in self.state.probes()]
            estimate = max(walls) if walls else 60.0
            if self.spent() + estimate > self.args.budget_s:
                raise StopIteration(f"--budget-s {self.args.budget_s:g}")
            self.live.starting(self.count, " ".join(f"{k}={v}" for k, v in config.items()), self.spent(), estimate)
            cached = self.probe(probe, config)
            self.state.record(cached)
        self.results[key] = cached.tokens_per_s
        best = max(self.results.values())
        self.live.done(f"{cached.tokens_per_s:.0f} tokens/s ({cached.validity or 'ok'}, {cached.wall_s:.0f} s)",
                       f"{best:.0f} tokens/s", replayed=replayed)
        return cached.tokens_per_s

    def probe(self, probe: Probe, config: dict) -> Probe:
        start = time.monotonic()
        try:
            addresses = self.workers.ensure(worker_flags(config, self.space))
            runner = Runner(addresses, self.subset, self.n, self.workers.out, self.args.harness_arg, True)
            probe = runner.run(probe, "Offline", offline_conf(self.n),
                               ["--max-new-tokens", str(self.args.max_new_tokens), *harness_flags(config, self.space)])
        except (LaunchError, RuntimeError) as exc:
            self.workers.stop()
            probe.validity = f"FAILED: {str(exc).splitlines()[0][:200]}"
        probe.wall_s = round(time.monotonic() - start, 2)  # the restart counts
        return probe

    def coordinate(self) -> tuple[dict, float, float]:
        best_cfg = {k: start for k, (_, _, start) in self.space.items()}
        first = self.evaluate(best_cfg)
        self.results.clear()  # the start point again: the noise
        second = self.evaluate(best_cfg)
        best = max(first, second)
        noise = abs(first - second) / max((first + second) / 2, 1e-9)
        threshold = max(0.01, 1.5 * noise)
        keys = sorted(self.space, key=lambda k: self.space[k][0] == "harness")
        for _ in range(3):
            changed = False
            for key in keys:
                values = self.space[key][1]
                directions = (1, -1) if key in ORDERED else (0,)
                for direction in directions:
                    i = values.index(best_cfg[key])
                    candidates = ([values[j] for j in range(i + 1, len(values))] if direction == 1 else
                                  [values[j] for j in range(i - 1, -1, -1)] if direction == -1 else
                                  [v for v in values if v != best_cfg[key]])
                    moved = False
                    for value in candidates:
                        tps = self.evaluate(dict(best_cfg, **{key: value}))
                        if tps > best * (1 + threshold):
                            best, best_cfg, moved, changed = tps, dict(best_cfg, **{key: value}), True, True
                        elif direction:
                            break  # pruned: no better than the best by more than the noise
                    if moved and direction == 1:
                        break  # a step up helped: the peak is not below
            if not changed:
                break
        return best_cfg, best, noise

    def grid(self) -> tuple[dict, float, float]:
        keys = sorted(self.space, key=lambda k: self.space[k][0] == "harness")  # dispatch innermost: fewer restarts
        best_cfg, best = None, -1.0
        for values in itertools.product(*(self.space[k][1] for k in keys)):
            config = {k: v for k, v in zip(keys, values)}
            tps = self.evaluate(config)
            if tps > best:
                best, best_cfg = tps, config
        return best_cfg, best, 0.0


def check_args(args) -> None:
    for flag in ("workers_count", "subset", "max_new_tokens", "max_probes"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 1")
    if args.budget_s <= 0:
        raise InputError(f"--budget-s {args.budget_s}: must be > 0")
    if args.gpu_memory_gib is not None and args.gpu_memory_gib <= 0:
        raise InputError(f"--gpu-memory-gib {args.gpu_memory_gib}: must be > 0")
    if args.accuracy_run and not (pathlib.Path(args.accuracy_run) / "manifest.json").is_file():
        raise InputError(f"--accuracy-run {args.accuracy_run}: no manifest.json there")


def base_worker_args(args, longest_prompt: int) -> tuple[list[str], dict]:
    """Flags every probe's workers get: the user's, max_model_len from the data, the memory budget."""
    derived = {"max-model-len": longest_prompt + args.max_new_tokens}
    hardware = {}
    if args.gpu_memory_gib is not None:
        if args.engine != "vllm":
            raise InputError("--gpu-memory-gib is for --engine vllm")
        card = card_memory_gib()
        if card is None:
            raise InputError("--gpu-memory-gib: cannot read the card's memory (nvidia-smi)")
        if args.gpu_memory_gib > card:
            raise InputError(f"--gpu-memory-gib {args.gpu_memory_gib:g}: the card has {card:.1f} GiB")
        derived["gpu-memory-utilization"] = round(args.gpu_memory_gib / card, 4)
        hardware.update(card_memory_gib=round(card, 1), memory_budget_gib=args.gpu_memory_gib)
    return [*args.worker_arg, *(x for k, v in derived.items() for x in (f"--{k}", str(v)))], dict(derived=derived,
                                                                                                   **hardware)


def device_of(run_dir: str) -> dict:
    try:
        workers = json.loads((pathlib.Path(run_dir) / "manifest.json").read_text()).get("workers") or []
    except (OSError, ValueError):
        return {}
    args = (workers[0].get("engine_args") or {}) if workers else {}
    return {"device_name": args.get("device_name", "sim" if workers and workers[0].get("simulated") else "unknown"),
            "workers": len(workers)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_args(args)
        space = search_space(args.engine, args.space)
        dataset = load_dataset(pathlib.Path(args.dataset))
        out = pathlib.Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        base, hardware = base_worker_args(args, max(len(t) for t in dataset.tok_inputs))
        records = json.loads(pathlib.Path(args.dataset).read_text())
        subset = representative_subset(records, args.subset)
        subset_path = out / "subset.json"
        subset_path.write_text(json.dumps(subset))
        settings = {"engine": args.engine, "model": args.model, "dataset": args.dataset, "subset": len(subset),
                    "max_new_tokens": args.max_new_tokens, "base": base, "grid": args.grid,
                    "space": {k: v[1] for k, v in space.items()}, "harness_arg": args.harness_arg}
        state = State(out / "tune.json", settings)
    except (InputError, DatasetError, StateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    grid_size = 1
    for _, values, _ in space.values():
        grid_size *= len(values)
    live = Live(f"tune {args.engine}", min(args.max_probes, grid_size if args.grid else args.max_probes),
                args.budget_s, args.quiet)
    if state.resumed:
        live.note(f"resuming from {state.path}: {state.resumed} finished probe(s) are replayed, not run")
    workers = Workers(args, out, base)
    tuner = Tuner(args, space, state, workers, subset_path, len(subset), live)
    stopped = "converged"
    try:
        try:
            best_cfg, best, noise = tuner.grid() if args.grid else tuner.coordinate()
        except StopIteration as exc:
            stopped = str(exc)
            ok = {json.dumps(p.config, sort_keys=True): p for p in state.probes() if p.tokens_per_s}
            if not ok:
                print(f"error: stopped by {stopped} before any probe finished", file=sys.stderr)
                return EXIT_FAILED
            top = max(ok.values(), key=lambda p: p.tokens_per_s)
            best_cfg, best, noise = top.config, top.tokens_per_s, 0.0
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(state.probes())} finished probe(s) kept in {state.path}; run the same command "
              f"to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        workers.stop()
    if best <= 0:
        print("error: no probe finished (see the worker logs in the output folder)", file=sys.stderr)
        return EXIT_FAILED
    probes = state.probes()
    top = next(p for p in probes if p.config == best_cfg and p.tokens_per_s == best)
    engine_args = {k.replace("engine-arg:", ""): v for k, v in best_cfg.items() if space[k][0] == "worker"}
    extra = {k: v for k, v in engine_args.items() if k not in SPACES[args.engine]}
    engine_args = {k: _number(v) for k, v in engine_args.items() if k not in extra}
    engine_args.update({k: v for k, v in hardware["derived"].items()})
    if extra:
        engine_args["engine-arg"] = {k: _number(v) for k, v in extra.items()}
    device = device_of(top.run_dir)
    name = args.name or f"{args.engine}-{device.get('device_name', 'unknown')}".replace(" ", "-").lower()
    search = {"strategy": "grid" if args.grid else "coordinate search with pruning", "probes": len(probes),
              "distinct_settings": len({json.dumps(p.config, sort_keys=True) for p in probes}),
              "grid_size": grid_size, "restarts": workers.restarts, "cost_s": round(sum(p.wall_s for p in probes), 1),
              "noise": round(noise, 4), "stopped": stopped}
    measured = {"tokens_per_s": round(best, 1), "samples_per_s": round(top.samples_per_s, 3), "prompts": len(subset),
                "max_new_tokens": args.max_new_tokens, "forced_output_tokens": True, "run_dir": top.run_dir}
    path = pathlib.Path(args.preset_dir) / f"{name}.json"
    preset = presets.write_preset(
        path, name, args.engine, engine_args, {k: _number(v) for k, v in best_cfg.items() if space[k][0] == "harness"},
        dict(device, **{k: v for k, v in hardware.items() if k != "derived"}), measured,
        presets.accuracy_record(engine_args, args.accuracy_run), search,
        {"worker_args": args.worker_arg, "model": args.model, "dataset": args.dataset})
    state.set(result={"preset": str(path), "best": best_cfg, "tokens_per_s": best, "search": search})
    live.note(f"best: {' '.join(f'{k}={v}' for k, v in best_cfg.items())}: {best:.0f} tokens/s; {search['probes']} "
              f"probes ({search['distinct_settings']} settings of a {grid_size}-setting grid), {workers.restarts} "
              f"restarts, {search['cost_s']} s")
    live.note(f"preset: {path} (accuracy: {preset['accuracy'].get('note', preset['accuracy'])})\n"
              f"use: python -m sut.worker --preset {path} ...   harness: "
              + " ".join(f"--{k} {v}" for k, v in preset["harness"].items()))
    shutil.rmtree(out / "confs", ignore_errors=True)
    return EXIT_OK


def _number(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except (TypeError, ValueError):
            continue
    return value
