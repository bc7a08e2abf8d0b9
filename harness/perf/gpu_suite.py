"""Every GPU benchmark under benchmarks/ in one command; each result file carries the commit, the GPU
model, the command and the date, so a number is never read apart from the code it measured.

python -m harness.perf.gpu_suite [--parts single,scaling,unequal] [--prompts 3000] [--out benchmarks/results]

single   one GPU: vLLM alone vs the harness through one worker (Offline tokens/s, goal b/a >= 0.99) and
         Server: harness vs AsyncLLM replaying the same LoadGen arrivals (added TTFT/TPOT)
scaling  N equal GPUs: 1 worker vs N workers through the harness (goal >= 0.97 N) and static shares,
         N vLLM processes alone with 1/N of the prompts each, at once (goal: the harness >= 0.97 of it);
         the waste of the end game (goal <= 1 % of output tokens)
unequal  two GPUs, the second worker with --unequal-args (default: --max-num-seqs 32): each alone, both
         through the harness (goal >= 0.95 of the sum of the solo rates) and static halves with the same
         settings (goal: the harness >= 1.2 x)
Parts fit the device tool's 10-minute calls one at a time; run them in one call where time allows.
Weights are dummy (config only); every sample is forced to 128 output tokens.
"""
from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import shlex
import subprocess
import sys
import tempfile

from harness.perf import vllm_compare as vc
from harness.perf.stamp import commit_arg, device_slug, git_commit, revision_tag
from harness.run.synthetic import synthetic_records

ROOT = pathlib.Path(__file__).resolve().parents[2]


def child_argv(args, prompts: int, extra: list[str] = ()) -> list[str]:
    return ["--model", args.model, "--prompts", str(prompts), "--seed", str(args.seed), *args.engine_flags, *extra]


def engine_args(args, prompts: int, extra: list[str] = ()):
    return vc.parse(child_argv(args, prompts, extra))


def static_shares(args, prompts: int, per_gpu_extra: list[list[str]], log) -> dict:
    """Each GPU its own vLLM process with its share of the prompts, all at once: the hand split."""
    n = len(per_gpu_extra)
    children = [vc.start_child("h", child_argv(args, prompts, extra), ["--shard", f"{k}/{n}"],
                               env={"CUDA_VISIBLE_DEVICES": vc.visible_gpu(k)}) for k, extra in enumerate(per_gpu_extra)]
    shares = [child.result(log) for child in children]
    tokens = sum(s["output_tokens"] for s in shares)
    return {"shares": shares, "tokens_per_s": tokens / max(s["seconds"] for s in shares)}


def with_workers(args, prompts: int, gpus: list[int], extra_flags: dict, workdir: pathlib.Path, runs):
    """Start one worker per GPU, warm each, run `runs(addresses, dataset)`, stop them."""
    engine = engine_args(args, prompts)
    dataset = workdir / f"synthetic-{prompts}.json"
    dataset.write_text(json.dumps(synthetic_records(prompts, args.seed)))
    warm = workdir / "warmup.json"
    warm.write_text(json.dumps(synthetic_records(64, args.seed + 1)))
    workers = vc.start_workers(engine, gpus, workdir, extra_flags)
    try:
        for worker in workers:  # the untimed warm-up the direct engines get too
            vc.run_harness([worker.address], warm, 64, "Offline", workdir)
        return runs([w.address for w in workers], dataset)
    finally:
        for worker in workers:
            worker.stop()


def part_scaling(args, gpus: list[int], workdir: pathlib.Path, log) -> dict:
    prompts = args.prompts

    def runs(addresses, dataset):
        return {"one": vc.run_harness(addresses[:1], dataset, prompts, "Offline", workdir),
                "all": vc.run_harness(addresses, dataset, prompts, "Offline", workdir)}
    r = with_workers(args, prompts, gpus, {}, workdir, runs)
    r["static"] = static_shares(args, prompts, [[] for _ in gpus], log)
    all_, one, static = r["all"]["tokens_per_s"], r["one"]["tokens_per_s"], r["static"]["tokens_per_s"]
    waste = r["all"]["dispatch"]["wasted_fraction"] or 0.0
    r["summary"] = {"workers": len(gpus), "ratio_all_to_one": all_ / one, "goal_ratio": 0.97 * len(gpus),
                    "ratio_to_static": all_ / static, "goal_to_static": 0.97, "waste_fraction": waste,
                    "goal_waste": 0.01}
    return r


def part_unequal(args, workdir: pathlib.Path, log) -> dict:
    prompts = args.unequal_prompts
    second = shlex.split(args.unequal_args)

    def runs(addresses, dataset):
        return {"solo_first": vc.run_harness(addresses[:1], dataset, prompts, "Offline", workdir),
                "solo_second": vc.run_harness(addresses[1:], dataset, prompts, "Offline", workdir),
                "both": vc.run_harness(addresses, dataset, prompts, "Offline", workdir)}
    r = with_workers(args, prompts, [0, 1], {1: second}, workdir, runs)
    r["static"] = static_shares(args, prompts, [[], second], log)
    solo = r["solo_first"]["tokens_per_s"] + r["solo_second"]["tokens_per_s"]
    both, static = r["both"]["tokens_per_s"], r["static"]["tokens_per_s"]
    r["summary"] = {"second_worker_args": args.unequal_args, "speed_ratio": r["solo_first"]["tokens_per_s"]
                    / r["solo_second"]["tokens_per_s"], "ratio_to_solo_sum": both / solo, "goal_to_solo_sum": 0.95,
                    "ratio_to_static": both / static, "goal_to_static": 1.2,
                    "waste_fraction": r["both"]["dispatch"]["wasted_fraction"] or 0.0}
    return r


def part_single(args, workdir: pathlib.Path) -> dict:
    out = workdir / "single.json"
    command = [sys.executable, "-m", "harness.perf.vllm_compare", "--parts", "a,b,c", "--credit-factors", "2",
               "--server-requests", str(args.server_requests), "--results", str(out),
               *child_argv(args, args.single_prompts)]
    proc = subprocess.run(command, capture_output=True, text=True)
    print(proc.stdout[-3000:], flush=True)
    if proc.returncode:
        raise RuntimeError(f"single-GPU part failed: {proc.stderr[-2000:]}")
    r = json.loads(out.read_text())
    direct, harness = r["a_direct"]["tokens_per_s"], r["b_harness_credit2"]["tokens_per_s"]
    r["summary"] = {"harness_to_direct": harness / direct, "goal": 0.99,
                    "added_ttft_p50_ms": r["c_harness"]["ttft_p50_ms"] - r["c_direct"]["ttft_p50_ms"]}
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="single,scaling,unequal")
    p.add_argument("--model", default=str(ROOT / "benchmarks/models/llama3.1-8b"))
    p.add_argument("--prompts", type=int, default=3000, help="scaling part")
    p.add_argument("--unequal-prompts", type=int, default=2000)
    p.add_argument("--single-prompts", type=int, default=2000)
    p.add_argument("--server-requests", type=int, default=600)
    p.add_argument("--unequal-args", default="--max-num-seqs 32", help="flags of the second worker (unequal part)")
    p.add_argument("--engine-flags", default="", help="flags for every engine, e.g. '--quantization fp8'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--commit", type=commit_arg, default=None,
                   help="the commit measured (default: this checkout's, -dirty with changes, or the install's stamp)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    args.engine_flags = shlex.split(args.engine_flags)
    import torch

    gpus = list(range(torch.cuda.device_count()))
    names = sorted({torch.cuda.get_device_name(i) for i in gpus})
    stamp = {"commit": args.commit or git_commit(), "gpu": " + ".join(names), "gpus": len(gpus),
             "command": "python -m harness.perf.gpu_suite " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="gpu-suite-"))
    log = open(workdir / "children.log", "w")
    slug = device_slug(names[0]) if names else "nogpu"
    for part in args.parts.split(","):
        if part in ("scaling", "unequal") and len(gpus) < 2:
            print(f"{part}: needs 2+ GPUs, this machine has {len(gpus)}; skipped", flush=True)
            continue
        result = {"single": lambda: part_single(args, workdir),
                  "scaling": lambda: part_scaling(args, gpus, workdir, log),
                  "unequal": lambda: part_unequal(args, workdir, log)}[part]()
        result = {**result, **stamp, "part": part}  # the suite's stamp wins over a part's own
        path = out / f"gpu-{part}-{slug}x{len(gpus)}-{revision_tag(stamp['commit'])}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"{part}: {json.dumps(result['summary'])}  -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
