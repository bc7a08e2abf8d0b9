"""`python -m harness tune`: engine settings for the most Offline tokens/s, written as a preset.

Each probe is a short Offline harness run (every sample forced to --max-new-tokens) on a subset of
the dataset whose prompt lengths follow the dataset's (evenly spaced quantiles of length), on workers
this command starts with the probe's settings; a worker restart and its untimed warm-up run are
part of the probe's cost, and a probe that cannot finish within what is left of --budget-s is
skipped (said in the log and in tune.json). Search: coordinate search with pruning, the settings
with the largest expected gain per probe first (precision, then batch shape), dispatch settings
(no restart) last; the noise is measured by a warm repeat when a decision is close. --grid runs
every combination instead (the baseline the search is measured against; see DESIGN.md). A re-run
with the same --output resumes: finished probes are replayed from tune.json, not run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys

from harness.artifacts.dataset import DatasetError, load_dataset
from harness.perf.stamp import commit_arg
from harness.tune import presets
from harness.tune.live import Live
from harness.tune.search import CLEAR, Tuner, Workers
from harness.tune.space import SPACES, InputError, search_order, search_space
from harness.tune.state import State, StateError

EXIT_OK, EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 0, 2, 3, 130


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
    p.add_argument("--warmup", type=int, default=128,
                   help="prompts of the untimed Offline run after every worker start (default 128; 0: none)")
    p.add_argument("--max-probes", type=int, default=30)
    p.add_argument("--budget-s", type=float, default=7200.0,
                   help="wall seconds of all probes, restarts and warm-ups included (resumed ones too)")
    p.add_argument("--grid", action="store_true", help="run every combination (the baseline for the search)")
    p.add_argument("--accuracy-run", default=None, help="AccuracyOnly run directory backing an FP8 preset")
    p.add_argument("--commit", type=commit_arg, default=None,
                   help="the commit the preset records (default: this checkout's, or the install's stamp)")
    p.add_argument("--quiet", action="store_true")
    return p


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


def check_args(args) -> None:
    for flag in ("workers_count", "subset", "max_new_tokens", "max_probes"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 1")
    if args.warmup < 0:
        raise InputError(f"--warmup {args.warmup}: must be >= 0")
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
                    "max_new_tokens": args.max_new_tokens, "base": base, "grid": args.grid, "warmup": args.warmup,
                    "space": {k: list(v.values) for k, v in space.items()}, "harness_arg": args.harness_arg}
        state = State(out / "tune.json", settings)
    except (InputError, DatasetError, StateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    grid_size = 1
    for setting in space.values():
        grid_size *= len(setting.values)
    live = Live(f"tune {args.engine}", min(args.max_probes, grid_size if args.grid else args.max_probes),
                args.budget_s, args.quiet)
    if state.resumed:
        live.note(f"resuming from {state.path}: {state.resumed} finished probe(s) are replayed, not run")
    workers = Workers(args, out, base)
    tuner = Tuner(args, space, state, workers, subset_path, len(subset), live)
    stopped = "grid done" if args.grid else "converged"
    try:
        try:
            best_cfg, best = tuner.grid() if args.grid else tuner.coordinate()
        except StopIteration as exc:
            stopped = str(exc)
            ok = [p for p in state.probes() if p.tokens_per_s]
            if not ok:
                print(f"error: stopped by {stopped} before any probe finished", file=sys.stderr)
                return EXIT_FAILED
            top = max(ok, key=lambda p: p.tokens_per_s)
            best_cfg, best = top.config, top.tokens_per_s
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(state.probes())} finished probe(s) kept in {state.path}; run the same command "
              f"to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        workers.stop()
    if tuner.skipped:
        skips = f"{len(tuner.skipped)} probe(s) skipped: they did not fit in --budget-s {args.budget_s:g}"
        stopped = skips if stopped in ("converged", "grid done") else f"{stopped}; {skips}"
    if not best or best <= 0:
        print("error: no probe finished (see the worker logs in the output folder)", file=sys.stderr)
        return EXIT_FAILED
    probes = state.probes()
    top = max((p for p in probes if p.config == best_cfg), key=lambda p: p.tokens_per_s)
    engine_args = {k.replace("engine-arg:", ""): v for k, v in best_cfg.items() if space[k].restarts}
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
              "restart_s": round(sum(p.restart_s for p in probes), 1), "warmup": args.warmup,
              "order": [] if args.grid else search_order(space),
              "noise": tuner.noise or f"not measured: every decision was clear by more than {CLEAR:.0%}",
              "skipped": len(tuner.skipped), "stopped": stopped}
    measured = {"tokens_per_s": round(best, 1), "samples_per_s": round(top.samples_per_s, 3), "prompts": len(subset),
                "max_new_tokens": args.max_new_tokens, "forced_output_tokens": True, "run_dir": top.run_dir}
    path = pathlib.Path(args.preset_dir) / f"{name}.json"
    preset = presets.write_preset(
        path, name, args.engine, engine_args, {k: _number(v) for k, v in best_cfg.items() if not space[k].restarts},
        dict(device, **{k: v for k, v in hardware.items() if k != "derived"}), measured,
        presets.accuracy_record(engine_args, args.accuracy_run), search,
        {"worker_args": args.worker_arg, "model": args.model, "dataset": args.dataset}, commit=args.commit)
    state.set(result={"preset": str(path), "best": best_cfg, "tokens_per_s": best, "search": search})
    live.note(f"best: {' '.join(f'{k}={v}' for k, v in best_cfg.items())}: {best:.0f} tokens/s; {search['probes']} "
              f"probes ({search['distinct_settings']} settings of a {grid_size}-setting grid), {workers.restarts} "
              f"restarts, {search['cost_s']} s; stopped: {stopped}")
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
