"""Harness vs vLLM alone on the same GPU, same prompts, one run. Prints a table; writes JSON.

python scripts/bench_vllm.py --model benchmarks/models/llama3.1-8b --prompts 1000 [--parts a,b,c,d]
    [--server-qps 20 --server-requests 400] [--quantization fp8 --kv-cache-dtype fp8] [--results FILE]

a  vLLM LLM.generate on all prompts: output tokens/s
b  the harness, Offline, through one gRPC worker on the same GPU: tokens/s and b/a
c  Server at a fixed QPS: p50/p99 TTFT and TPOT, harness vs AsyncLLM driven directly, replaying the
   exact arrival times and samples LoadGen issued in the harness run (issue_schedule.json)
d  N GPUs: N workers vs 1 worker through the harness (needs 2+ GPUs)
Weights are dummy (config only) and every sample is forced to 128 output tokens, unless --real-model:
then the model directory's weights and tokenizer load, prompts come from --dataset (cnn_eval.json
format, cycled to --prompts) and outputs stop at the model's EOS (greedy, 1..128 new tokens), the way
the harness runs a real model.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from harness.artifacts.metrics import summary_metrics
from harness.perf.harness_run import run_harness as harness_run
from harness.run.synthetic import synthetic_records
from sut.worker.launch import WorkerProcess, WorkerSpec

ROOT = pathlib.Path(__file__).resolve().parents[2]

OUT_TOKENS = 128


def engine_kwargs(args) -> dict:
    kwargs = dict(max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
                  gpu_memory_utilization=args.gpu_memory_utilization)
    if not args.real_model:
        kwargs.update(load_format="dummy", skip_tokenizer_init=True, generation_config="vllm")
    if args.dtype:
        kwargs["dtype"] = args.dtype
    if args.quantization:
        kwargs["quantization"] = args.quantization
    if args.kv_cache_dtype:
        kwargs["kv_cache_dtype"] = args.kv_cache_dtype
    # the same prompts run several times on one worker: a prefix cache would make later runs faster
    kwargs["enable_prefix_caching"] = args.enable_prefix_caching
    return kwargs


def worker_flags(args) -> list[str]:
    flags = ["--max-num-seqs", str(args.max_num_seqs), "--max-num-batched-tokens",
             str(args.max_num_batched_tokens), "--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    if not args.real_model:
        flags = ["--load-format", "dummy", *flags]
    if args.dtype:
        flags += ["--dtype", args.dtype]
    if args.quantization:
        flags += ["--quantization", args.quantization]
    if args.kv_cache_dtype:
        flags += ["--kv-cache-dtype", args.kv_cache_dtype]
    flags += ["--engine-arg", f"enable_prefix_caching={json.dumps(args.enable_prefix_caching)}"]
    return flags


def sampling(args, delta: bool = True):
    import vllm
    from vllm.sampling_params import RequestOutputKind
    kind = RequestOutputKind.DELTA if delta else RequestOutputKind.CUMULATIVE
    forced = not args.real_model  # the harness's rules: greedy, 1..128 new tokens, stop at EOS
    return vllm.SamplingParams(temperature=0.0, max_tokens=OUT_TOKENS, min_tokens=OUT_TOKENS if forced else 1,
                               ignore_eos=forced, detokenize=False, seed=42, output_kind=kind)


def benchmark_records(args, warmup: bool = False) -> list[dict]:
    """The timed prompts (or the untimed warm-up ones): synthetic, or --dataset's records cycled."""
    if not args.dataset:
        return synthetic_records(64, args.seed + 1) if warmup else synthetic_records(args.prompts, args.seed)
    records = json.loads(pathlib.Path(args.dataset).read_text())
    if warmup:
        records = records[::-1]
    count = 64 if warmup else args.prompts
    return [records[i % len(records)] for i in range(count)]


# --- parts run in child processes (one engine per process) -------------------------------------

def warmup_prompts(args) -> list[list[int]]:
    """Untimed first requests for every engine (JIT, graph capture): distinct from the timed ones."""
    return [r["tok_input"] for r in benchmark_records(args, warmup=True)]


def child_direct_offline(args, prompts) -> dict:
    import vllm
    from vllm.inputs import TokensPrompt
    llm = vllm.LLM(model=args.model, **engine_kwargs(args))
    params = sampling(args, delta=False)
    llm.generate([TokensPrompt(prompt_token_ids=p) for p in warmup_prompts(args)], params, use_tqdm=False)
    start = time.perf_counter()
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {"output_tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
            "samples_per_s": len(outputs) / elapsed}


def child_direct_shard(args, prompts) -> dict:
    """Static split: this process's share of the prompts (--shard K/N), vLLM alone, as a hand split runs."""
    k, n = (int(x) for x in args.shard.split("/"))
    return child_direct_offline(args, prompts[k::n])


def child_direct_server(args, prompts) -> dict:
    import numpy as np
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.inputs import TokensPrompt
    from vllm.v1.engine.async_llm import AsyncLLM

    async def main():
        llm = AsyncLLM.from_engine_args(AsyncEngineArgs(model=args.model, **engine_kwargs(args)))

        async def drain(i, prompt):
            async for _ in llm.generate(TokensPrompt(prompt_token_ids=prompt), sampling(args), f"warm{i}"):
                pass
        await asyncio.gather(*(drain(i, p) for i, p in enumerate(warmup_prompts(args))))
        if args.replay:  # the arrivals and samples LoadGen produced in the harness run
            schedule = json.loads(pathlib.Path(args.replay).read_text())
            arrivals, picks = [t for t, _ in schedule], [i for _, i in schedule]
        else:
            rng = np.random.default_rng(args.seed)
            arrivals = np.cumsum(rng.exponential(1.0 / args.server_qps, args.server_requests))
            picks = rng.integers(0, len(prompts), args.server_requests)
        ttft, tpot = [], []

        async def one(i, at):
            await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
            scheduled = t0 + at
            first = None
            n = 0
            async for out in llm.generate(TokensPrompt(prompt_token_ids=prompts[picks[i]]), sampling(args), f"r{i}"):
                n += len(out.outputs[0].token_ids)
                if first is None and n:
                    first = time.perf_counter()
            end = time.perf_counter()
            ttft.append(first - scheduled)
            tpot.append((end - first) / max(1, n - 1))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, at) for i, at in enumerate(arrivals)))
        llm.shutdown()
        return {"ttft_p50_ms": 1e3 * float(np.percentile(ttft, 50)), "ttft_p99_ms": 1e3 * float(np.percentile(ttft, 99)),
                "tpot_p50_ms": 1e3 * float(np.percentile(tpot, 50)), "tpot_p99_ms": 1e3 * float(np.percentile(tpot, 99))}
    return asyncio.run(main())


def run_child(part: str, argv: list[str], log, extra=()) -> dict:
    """One engine per process: the part runs in `python -m harness.perf.vllm_compare --child PART`."""
    return start_child(part, argv, extra).result(log)


class start_child:
    """A child part started now (with its own environment, e.g. CUDA_VISIBLE_DEVICES); result() waits."""

    def __init__(self, part: str, argv: list[str], extra=(), env: dict | None = None):
        self.part = part
        command = [sys.executable, "-m", "harness.perf.vllm_compare", "--child", part, *argv, *extra]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))

    def result(self, log) -> dict:
        out, err = self.proc.communicate()
        log.write(out + err)
        for line in reversed(out.splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise RuntimeError(f"part {self.part} failed (rc {self.proc.returncode}): {err[-2000:]}")


# --- the harness side ------------------------------------------------------------------------------

def visible_gpu(index: int) -> str:
    """The CUDA_VISIBLE_DEVICES value for this process's GPU `index`: a child given "0" while this process
    runs with CUDA_VISIBLE_DEVICES=2 would land on physical GPU 0, beside another experiment."""
    visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return visible[index] if index < len(visible) else str(index)


def start_workers(args, gpus: list[int], workdir: pathlib.Path, extra_flags: dict | None = None) -> list[WorkerProcess]:
    """One vLLM worker per GPU; extra_flags[gpu] adds (and so overrides) flags for that GPU's worker."""
    workers = []
    for gpu in gpus:
        flags = worker_flags(args) + list((extra_flags or {}).get(gpu, ()))
        spec = WorkerSpec("vllm", args.model, engine_args=tuple(flags), env={"CUDA_VISIBLE_DEVICES": visible_gpu(gpu)})
        workers.append(WorkerProcess(spec, workdir / f"worker-gpu{gpu}.log"))
    deadline = time.monotonic() + 600
    for worker in workers:
        worker.wait_ready(deadline)
    return workers


def run_harness(addresses, dataset, samples, scenario, workdir, extra=(), qps=None, forced: bool = True) -> dict:
    run_dir, results = harness_run(addresses, dataset, samples, scenario, workdir, qps or 1, extra,
                                   force_output_tokens=forced)
    metrics = summary_metrics(results)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    dispatch = manifest.get("dispatch", {})
    return {"tokens_per_s": metrics["tokens_per_s"],
            "dispatch": {key: dispatch.get(key) for key in ("stolen", "hedged", "wasted_output_tokens", "output_tokens",
                                                            "wasted_fraction", "requests_run_more_than_once")},
            "per_worker": [{k: w.get(k) for k in ("name", "completed", "output_tokens", "stolen_from", "stolen_to",
                                                  "hedged_to", "wasted_output_tokens")}
                           for w in dispatch.get("workers", [])],
            **{key: metrics[key] or 0.0 for key in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms")},
            "end_game": manifest.get("end_game"),  # every move and its why: the run dir is temporary
            "run_dir": str(run_dir)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks/models/llama3.1-8b"))
    p.add_argument("--prompts", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="a,b,c,d")
    p.add_argument("--max-num-seqs", type=int, default=512)
    p.add_argument("--max-num-batched-tokens", type=int, default=16384)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--quantization", default=None)
    p.add_argument("--dtype", default=None, help="e.g. bfloat16 for a model directory saved in float32")
    p.add_argument("--real-model", action="store_true",
                   help="load the directory's weights and tokenizer; outputs stop at EOS (1..128 new tokens)")
    p.add_argument("--dataset", default=None, help="cnn_eval.json-format prompts, cycled to --prompts")
    p.add_argument("--kv-cache-dtype", default=None)
    p.add_argument("--server-qps", type=float, default=None,
                   help="Server arrival rate (default: 85%% of part a's samples/s, else 20)")
    p.add_argument("--enable-prefix-caching", action="store_true",
                   help="keep vLLM's prefix cache on (off by default: runs repeat the same prompts)")
    p.add_argument("--server-requests", type=int, default=400)
    p.add_argument("--credit-factors", default="1", help="comma list: harness Offline runs, one per factor")
    p.add_argument("--results", default=None, help="write the results JSON here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--replay", default=None, help=argparse.SUPPRESS)
    p.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    return p


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    prompts = [r["tok_input"] for r in benchmark_records(args)]
    if args.child:
        result = {"a": child_direct_offline, "c": child_direct_server, "h": child_direct_shard}[args.child](args, prompts)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    import torch
    parts = set(args.parts.split(","))
    gpus = list(range(torch.cuda.device_count()))
    results = {"gpu": torch.cuda.get_device_name(0), "gpus": len(gpus), "prompts": args.prompts,
               "input_tokens": sum(map(len, prompts)), "command": sys.argv, "engine": engine_kwargs(args)}
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    dataset = workdir / "synthetic.json"
    dataset.write_text(json.dumps(benchmark_records(args)))
    log = open(workdir / "children.log", "w")
    if "a" in parts:
        results["a_direct"] = run_child("a", argv, log)
        print("a", results["a_direct"], flush=True)
    if args.server_qps is None:
        direct = results.get("a_direct", {}).get("samples_per_s")
        args.server_qps = round(0.85 * direct, 1) if direct else 20.0
        argv += ["--server-qps", str(args.server_qps)]
    results["server_qps"] = args.server_qps
    workers = start_workers(args, gpus if "d" in parts and len(gpus) > 1 else gpus[:1], workdir)
    try:
        first = [workers[0].address]
        warm = workdir / "warmup.json"
        warm.write_text(json.dumps(benchmark_records(args, warmup=True)))
        forced = not args.real_model
        for worker in workers:  # the same untimed warm-up the direct engines get
            run_harness([worker.address], warm, 64, "Offline", workdir, forced=forced)
        if "b" in parts:
            for factor in args.credit_factors.split(","):
                results[f"b_harness_credit{factor}"] = run_harness(first, dataset, args.prompts, "Offline", workdir,
                                                                    ["--credit-factor", factor], forced=forced)
                print("b", factor, results[f"b_harness_credit{factor}"], flush=True)
        if "c" in parts:
            results["c_harness"] = run_harness(first, dataset, args.server_requests, "Server", workdir,
                                               qps=args.server_qps, forced=forced)
            print("c harness", results["c_harness"], flush=True)
        if "d" in parts and len(workers) > 1:
            results["d_one"] = run_harness(first, dataset, args.prompts, "Offline", workdir)
            results["d_all"] = run_harness([w.address for w in workers], dataset, args.prompts, "Offline", workdir)
    finally:
        for worker in workers:
            worker.stop()
    if "c" in parts:  # the GPU is free again: AsyncLLM alone, replaying exactly LoadGen's arrivals
        schedule = pathlib.Path(results["c_harness"]["run_dir"]) / "issue_schedule.json"
        results["c_direct"] = run_child("c", argv, log, ["--replay", str(schedule)])
        print("c direct", results["c_direct"], flush=True)
    print_table(results)
    if args.results:
        pathlib.Path(args.results).write_text(json.dumps(results, indent=2))
    return 0


def print_table(r: dict) -> None:
    outputs = "outputs stop at EOS (1..128)" if r["engine"].get("load_format") != "dummy" else f"{OUT_TOKENS} out each"
    print(f"\n{r['gpu']} x{r['gpus']}, {r['prompts']} prompts, {r['input_tokens']} input tokens, {outputs}")
    direct = r.get("a_direct", {}).get("tokens_per_s")
    if direct:
        print(f"a  vLLM LLM.generate            {direct:10.1f} tok/s")
    for key, value in r.items():
        if key.startswith("b_harness"):
            ratio = f"  b/a = {value['tokens_per_s'] / direct:.4f}" if direct else ""
            print(f"b  harness Offline ({key[10:]:>8})  {value['tokens_per_s']:10.1f} tok/s{ratio}")
    if "c_direct" in r and "c_harness" in r:
        d, h = r["c_direct"], r["c_harness"]
        print(f"c  Server at {r['server_qps']} qps: AsyncLLM alone replays the harness run's LoadGen arrivals and samples")
        for metric in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"):
            print(f"c  {metric:12s} direct {d[metric]:9.2f}  harness {h[metric]:9.2f}  added {h[metric] - d[metric]:+8.2f} ms")
    if "d_all" in r:
        ratio = r["d_all"]["tokens_per_s"] / r["d_one"]["tokens_per_s"]
        print(f"d  {r['gpus']} workers / 1 worker = {ratio:.3f} (goal >= {0.97 * r['gpus']:.2f})")


if __name__ == "__main__":  # run_child starts the engine parts this way
    raise SystemExit(main())
