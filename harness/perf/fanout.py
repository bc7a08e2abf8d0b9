"""Fan-out benchmarks on SIMULATED workers (sim engine): ratios measured in one run, never GPU numbers.

python scripts/bench_fanout.py [--parts a,b,c] [--samples 1500] [--results FILE] [--stage-trace DIR]

a  two workers at speeds 1 : 2.7, Offline: makespan against the ideal (total work / sum of the
   workers' solo rates), beside static halves (each worker given half the samples); the waste
e  the same with two equal workers (the end game must waste almost nothing)
k  equal speed, capacities 64 : 8 (the big worker's credits hoard work the small one must take)
u  the GPU suite's unequal part in the sim: equal speed, 512 : 32 sequences, prefill the larger part
   of a step's cost (GPU_LIKE), 2000 samples: the small worker runs dry while the big one drains
   (a and e use sim workers that schedule like vLLM: a waiting queue, chunked prefill)
b  16 workers of mixed speeds: Offline against the ideal; Server at 70 % of their summed rate
c  coordinator ceiling with instant engines: Offline samples/s (goal >= 5000) and the latency a
   1000-QPS Server run adds (p99 first-token latency through LoadGen, gRPC and back; goal < 5 ms)
t  the same over TLS with a token (goal: >= 0.95 of c)
Everything is real but the engine: LoadGen, the harness, gRPC over loopback, worker processes.
With --stage-trace DIR the harness and the workers record each request's stages (sut.stage_trace)
and the Server run's breakdown is printed at the end (harness.perf.stages).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from harness.artifacts.metrics import summary_metrics
from harness.perf import stages
from harness.perf.cpu_wait import cgroup_throttled_s, cpu_times
from harness.perf.harness_run import run_harness
from harness.run.synthetic import synthetic_records
from sut.stage_trace import ENV as STAGE_TRACE_ENV
from sut.worker.launch import WorkerProcess, WorkerSpec

SIM = ["--step-ms", "10", "--step-ms-per-seq", "0.05", "--max-seqs", "64", "--prefill-tps", "100000"]
# like vLLM where dispatch feels it: requests wait beyond max_seqs, prompts prefill in chunks within a
# token budget, and a step costs more the more it carries, so a duplicate takes time from real work
VLLM_LIKE = ["--max-seqs", "64", "--max-batched-tokens", "2048", "--prefill-tps", "100000", "--step-ms", "5",
             "--step-ms-per-seq", "0.1"]
# llama3.1-8b on an H100 with ~1000-token prompts and 128 output tokens, roughly: a decode step reads the
# weights (6 ms) and each sequence's KV (0.1 ms), a prompt prefills at 40k tokens/s in 16k-token steps,
# so a loaded step is mostly prefill and a draining worker decodes its last requests several times faster;
# 512 : 32 sequences (the GPU suite's unequal part) give about 1.7 : 1 solo rates
GPU_LIKE = ["--max-seqs", "512", "--max-batched-tokens", "16384", "--prefill-tps", "40000", "--step-ms", "6",
            "--step-ms-per-seq", "0.1"]


class Bench:
    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.workers: list[WorkerProcess] = []
        self.datasets: dict[tuple, pathlib.Path] = {}

    def start(self, flags_per_worker: list[list[str]]) -> list[str]:
        started = []
        for flags in flags_per_worker:
            log = self.workdir / f"worker-{len(self.workers) + len(started)}.log"
            started.append(WorkerProcess(WorkerSpec("sim", "sim", engine_args=tuple(flags)), log))
        deadline = time.monotonic() + 60
        self.workers += started
        return [w.wait_ready(deadline) for w in started]

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def dataset(self, samples: int, seed: int = 0) -> pathlib.Path:
        key = (samples, seed)
        if key not in self.datasets:
            path = self.workdir / f"synthetic-{samples}-{seed}.json"
            path.write_text(json.dumps(synthetic_records(samples, seed)))
            self.datasets[key] = path
        return self.datasets[key]

    def run(self, addresses: list[str], samples: int, scenario: str = "Offline", qps: float = 1.0,
            seed: int = 0, extra=()) -> dict:
        run_dir, r = run_harness(addresses, self.dataset(samples, seed), samples, scenario, self.workdir, qps, extra)
        metrics, manifest = summary_metrics(r), json.loads((run_dir / "manifest.json").read_text())
        sps = metrics["samples_per_s"]
        return {"samples": samples, "samples_per_s": sps, "makespan_s": samples / sps if sps else None,
                **{key: metrics[key] or 0.0 for key in ("ttft_p50_ms", "ttft_p99_ms", "tpot_p99_ms")},
                "completed_per_s": r.get("result_completed_samples_per_sec"),
                "manifest": manifest.get("dispatch", {}), "end_game": manifest.get("end_game", {})}


def pair(bench: Bench, speeds: tuple[float, float], samples: int, flags=VLLM_LIKE, second_flags=()) -> dict:
    """Two workers (the second with `second_flags` added): each alone on half the samples, then both
    pulling all of them, then static halves."""
    first, second = bench.start([list(flags) + ["--speed", str(speeds[0])],
                                 list(flags) + ["--speed", str(speeds[1]), *second_flags]])
    solo = [bench.run([address], samples // 2)["samples_per_s"] for address in (first, second)]
    ideal = samples / sum(solo)
    pulled = bench.run([first, second], samples)
    half = samples // 2
    with ThreadPoolExecutor(2) as pool:  # static halves: each worker gets its own half, at once
        halves = list(pool.map(lambda args: bench.run(*args), [([first], half, "Offline", 1.0, 1),
                                                                ([second], half, "Offline", 1.0, 2)]))
    bench.stop()
    static = max(h["makespan_s"] for h in halves)
    dispatch = pulled["manifest"]
    return {"speeds": list(speeds), "second_flags": list(second_flags), "solo_rates": solo, "ideal_makespan_s": ideal,
            "pull_makespan_s": pulled["makespan_s"], "pull_efficiency": ideal / pulled["makespan_s"],
            "static_halves_makespan_s": static, "static_efficiency": ideal / static,
            "samples_per_worker": [w["completed"] for w in dispatch["workers"]],
            "last_completion_s": [w.get("last_completion_s") for w in dispatch["workers"]],
            "stolen": dispatch.get("stolen", 0), "hedged": dispatch.get("hedged", 0),
            "wasted_output_tokens": dispatch.get("wasted_output_tokens", 0),
            "waste_fraction": dispatch.get("wasted_output_tokens", 0) / max(1, dispatch.get("output_tokens", 0)),
            "moves": pulled["end_game"].get("moves", [])}


def _pair_line(label: str, r: dict) -> str:
    return (f"{label}   ideal {r['ideal_makespan_s']:.1f} s   pull {r['pull_makespan_s']:.1f} s (efficiency "
            f"{r['pull_efficiency']:.3f}; split {r['samples_per_worker']}, stolen {r['stolen']}, duplicated "
            f"{r['hedged']}, waste {100 * r['waste_fraction']:.2f} %, last answers at {r['last_completion_s']} s)   static halves {r['static_halves_makespan_s']:.1f} s "
            f"(efficiency {r['static_efficiency']:.3f})")


def part_b(bench: Bench, samples: int) -> dict:
    speeds = [0.5, 1.0, 1.5, 2.0, 2.7, 1.0, 0.75, 1.25] * 2
    addresses = bench.start([SIM + ["--speed", str(s)] for s in speeds])
    unit = bench.run([addresses[1]], samples // 8)["samples_per_s"]  # a speed-1 worker alone
    ideal = samples / (unit * sum(speeds))
    offline = bench.run(addresses, samples)
    qps = 0.7 * unit * sum(speeds)
    server = bench.run(addresses, int(qps * 20), "Server", qps)
    return {"speeds": speeds, "unit_rate": unit, "ideal_makespan_s": ideal, "offline_makespan_s": offline["makespan_s"],
            "offline_efficiency": ideal / offline["makespan_s"], "server_target_qps": qps,
            "server_completed_per_s": server["completed_per_s"], "server_ttft_p99_ms": server["ttft_p99_ms"],
            "server_tpot_p99_ms": server["tpot_p99_ms"]}


def part_c(bench: Bench, secure: bool = False) -> dict:
    """The coordinator's ceiling; with `secure`, over TLS with a token (the cost of a secured link)."""
    worker_flags, link_flags = ["--instant"], []
    if secure:
        from sut.worker.bench_security import make_certificates  # needs cryptography (the test extra)
        certs = make_certificates(bench.workdir)
        worker_flags += ["--auth-token-file", certs["token"], "--tls-cert", certs["cert"], "--tls-key", certs["key"]]
        link_flags = ["--auth-token-file", certs["token"], "--tls-ca", certs["ca"]]
    addresses = bench.start([worker_flags, worker_flags])
    offline = bench.run(addresses, 20000, extra=link_flags)
    pids = [worker.process.pid for worker in bench.workers]
    before, throttled = [cpu_times(pid) for pid in pids], cgroup_throttled_s()
    server = bench.run(addresses, 10000, "Server", 1000.0, extra=link_flags)
    throttled = None if throttled is None else round(cgroup_throttled_s() - throttled, 3)
    # a worker that waited for a CPU during the Server run: its share of the tail is contention
    during = [b and a and a - b for a, b in zip((cpu_times(pid) for pid in pids), before)]
    bench.stop()
    return {"secure": secure, "offline_samples_per_s": offline["samples_per_s"], "server_qps": 1000.0,
            "server_completed_per_s": server["completed_per_s"], "added_latency_p50_ms": server["ttft_p50_ms"],
            "added_latency_p99_ms": server["ttft_p99_ms"],
            "server_worker_cpu_s": [t and round(t.running_s, 2) for t in during],
            "server_worker_cpu_wait_s": [t and round(t.waiting_s, 2) for t in during],
            "server_cgroup_throttled_s": throttled}


def _ceiling_line(label: str, c: dict) -> str:
    return (f"{label}  Offline {c['offline_samples_per_s']:,.0f} samples/s (goal >= 5000)   Server 1000 qps: added "
            f"latency p50 {c['added_latency_p50_ms']:.2f} ms, p99 {c['added_latency_p99_ms']:.2f} ms (goal < 5); "
            f"workers ran {c['server_worker_cpu_s']} s and waited for a CPU {c['server_worker_cpu_wait_s']} s, "
            f"cgroup CPU quota throttled {c['server_cgroup_throttled_s']} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="a,e,k,u,b,c,t")
    p.add_argument("--samples", type=int, default=1500, help="part a (part b uses 3x)")
    p.add_argument("--results", default=None)
    p.add_argument("--stage-trace", default=None, metavar="DIR",
                   help="record every request's stages in the harness and the workers into DIR (adds ~1 us a stage)")
    args = p.parse_args(argv)
    if args.stage_trace:  # inherited by the workers and the harness runs this process starts
        os.environ[STAGE_TRACE_ENV] = str(pathlib.Path(args.stage_trace).resolve())
    parts = set(args.parts.split(","))
    bench = Bench(pathlib.Path(tempfile.mkdtemp(prefix="bench-fanout-")))
    results = {"note": "SIMULATED engines (sim): coordinator and dispatch behaviour only, not GPU results"}
    try:
        if "a" in parts:
            results["a"] = pair(bench, (1.0, 2.7), args.samples)
            print(_pair_line("a  speeds 1 : 2.7 (goal >= 0.95)", results["a"]), flush=True)
        if "e" in parts:
            results["e"] = pair(bench, (1.0, 1.0), args.samples)
            print(_pair_line("e  equal speeds (goal >= 0.97, waste <= 1 %)", results["e"]), flush=True)
        if "k" in parts:
            results["k"] = pair(bench, (1.0, 1.0), args.samples, second_flags=("--max-seqs", "8"))
            print(_pair_line("k  max-seqs 64 : 8 (goal >= 0.95)", results["k"]), flush=True)
        if "u" in parts:
            results["u"] = pair(bench, (1.0, 1.0), 2000, flags=GPU_LIKE, second_flags=("--max-seqs", "32"))
            print(_pair_line("u  GPU-like, max-seqs 512 : 32 (goal >= 0.95, waste <= 1 %)", results["u"]), flush=True)
        if "b" in parts:
            results["b"] = b = part_b(bench, 3 * args.samples)
            print(f"b  16 workers       Offline efficiency {b['offline_efficiency']:.3f}   Server at "
                  f"{b['server_target_qps']:.0f} qps: completed {b['server_completed_per_s']:.1f}/s, TTFT p99 "
                  f"{b['server_ttft_p99_ms']:.1f} ms, TPOT p99 {b['server_tpot_p99_ms']:.2f} ms", flush=True)
            bench.stop()
        if "c" in parts:
            results["c"] = part_c(bench)
            print(_ceiling_line("c  instant engines", results["c"]), flush=True)
        if "t" in parts:
            results["t"] = t = part_c(bench, secure=True)
            print(_ceiling_line("t  instant, TLS+token", t), flush=True)
            if "c" in results:
                print(f"t  TLS+token / plaintext Offline = "
                      f"{t['offline_samples_per_s'] / results['c']['offline_samples_per_s']:.3f} (goal >= 0.95)")
    finally:
        bench.stop()
    print("(SIMULATED engines: dispatch and coordinator figures, not GPU results)")
    if args.stage_trace and pathlib.Path(args.stage_trace).is_dir():  # the workers wrote theirs when stopped
        files, problems = stages.read_directory(pathlib.Path(args.stage_trace))
        for problem in problems:
            print(f"warning: {problem}", flush=True)
        for report in stages.analyse_files(files):
            print(stages.render(report))
    if args.results:
        pathlib.Path(args.results).write_text(json.dumps(results, indent=2))
    return 0
