"""`vllm serve` driven through the harness's OpenAI link vs our gRPC vLLM worker, same GPU, same
prompts: Offline tokens/s ratio and Server TTFT p50 difference. Writes a JSON stamped like gpu_suite's.

python -m harness.perf.serve_compare [--model benchmarks/models/llama3.1-8b] [--prompts 1500]
    [--server-qps Q] [--server-requests 400] [--tokenizer DIR] [--out benchmarks/results]

1  `python -m vllm.entrypoints.openai.api_server` with dummy weights and no tokenizer (token-id prompts
   in, `return_token_ids` out), warmed up, then the harness Offline and Server through
   `openai+http://127.0.0.1:PORT/v1?prompt=ids`; the server is stopped.
2  our gRPC vLLM worker with the same engine settings on the same GPU: the same Offline and Server runs
   (LoadGen's seeds are fixed: the same arrivals and samples).
Every sample is forced to 128 output tokens (ignore_eos). With --tokenizer the server loads that
tokenizer instead of --skip-tokenizer-init (for a vLLM whose server refuses to start without one).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness.perf import vllm_compare as vc
from harness.perf.stamp import commit_arg, device_slug, git_commit, revision_tag
from harness.run.synthetic import synthetic_records

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVED_NAME = "llama3.1-8b-dummy"
READY_TIMEOUT_S = 420
WARMUP_PROMPTS = 64


def server_command(args, port: int) -> list[str]:
    """The same engine settings as vllm_compare.worker_flags gives our worker."""
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model,
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--load-format", "dummy", "--generation-config", "vllm",
               "--max-num-seqs", str(args.max_num_seqs), "--max-num-batched-tokens", str(args.max_num_batched_tokens),
               "--gpu-memory-utilization", str(args.gpu_memory_utilization), "--disable-uvicorn-access-log",
               "--enable-prefix-caching" if args.enable_prefix_caching else "--no-enable-prefix-caching"]
    command += ["--tokenizer", args.tokenizer] if args.tokenizer else ["--skip-tokenizer-init"]
    if args.quantization:
        command += ["--quantization", args.quantization]
    if args.kv_cache_dtype:
        command += ["--kv-cache-dtype", args.kv_cache_dtype]
    return command + shlex.split(args.server_args)


def endpoint(port: int, max_concurrency: int) -> str:
    # prompt=ids: a server that cannot take token ids must fail here, not fall back to text silently
    return f"openai+http://127.0.0.1:{port}/v1?prompt=ids&max_concurrency={max_concurrency}&model={SERVED_NAME}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VllmServer:
    """`vllm serve` in its own session, stopped by its process group (only what this started)."""

    def __init__(self, command: list[str], port: int, log: pathlib.Path):
        self.port, self.log = port, log
        self._out = open(log, "w")
        self.proc = subprocess.Popen(command, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vllm serve exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/models", timeout=2) as answer:
                    if json.load(answer).get("data"):
                        return
            except OSError:
                pass
            time.sleep(1.0)
        raise RuntimeError(f"vllm serve not ready within {timeout_s:g} s: {self.tail()}")

    def probe(self) -> dict:
        """One token-id request, as the link sends it: the server must take ids and return ids."""
        body = {"model": SERVED_NAME, "prompt": [1, 2, 3, 4], "max_tokens": 4, "min_tokens": 4, "ignore_eos": True,
                "temperature": 0.0, "return_token_ids": True}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                choice = json.load(answer)["choices"][0]
        except OSError as exc:
            detail = exc.read().decode(errors="replace")[:500] if hasattr(exc, "read") else str(exc)
            raise RuntimeError(f"vllm serve refused a token-id prompt: {detail}; {self.tail()}") from None
        if not isinstance(choice.get("token_ids"), list) or len(choice["token_ids"]) != 4:
            raise RuntimeError(f"vllm serve returned no output token ids (return_token_ids): {choice}")
        return choice

    def tail(self, chars: int = 3000) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(wait)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        self._out.close()


def measure(addresses: list[str], dataset: pathlib.Path, warmup: pathlib.Path, args, workdir: pathlib.Path) -> dict:
    """Untimed warm-up, Offline on every prompt, then Server at a fixed qps (LoadGen's seeds are
    mlperf.conf's, so both backends get the same arrivals and samples)."""
    vc.run_harness(addresses, warmup, WARMUP_PROMPTS, "Offline", workdir)
    offline = vc.run_harness(addresses, dataset, args.prompts, "Offline", workdir)
    server = vc.run_harness(addresses, dataset, args.server_requests, "Server", workdir, qps=args.server_qps)
    return {"offline": offline, "server": server}


def summarize(http: dict, grpc: dict) -> dict:
    ratio = http["offline"]["tokens_per_s"] / grpc["offline"]["tokens_per_s"]
    return {"offline_tokens_per_s_http": http["offline"]["tokens_per_s"],
            "offline_tokens_per_s_grpc": grpc["offline"]["tokens_per_s"],
            "offline_ratio_http_to_grpc": ratio,
            "server_ttft_p50_ms_http": http["server"]["ttft_p50_ms"],
            "server_ttft_p50_ms_grpc": grpc["server"]["ttft_p50_ms"],
            "server_added_ttft_p50_ms": http["server"]["ttft_p50_ms"] - grpc["server"]["ttft_p50_ms"],
            "server_tpot_p50_ms_http": http["server"]["tpot_p50_ms"],
            "server_tpot_p50_ms_grpc": grpc["server"]["tpot_p50_ms"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "benchmarks/models/llama3.1-8b"))
    p.add_argument("--prompts", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--server-qps", type=float, default=20.0)
    p.add_argument("--server-requests", type=int, default=400)
    p.add_argument("--max-num-seqs", type=int, default=512)
    p.add_argument("--max-num-batched-tokens", type=int, default=16384)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--quantization", default=None)
    p.add_argument("--kv-cache-dtype", default=None)
    p.add_argument("--enable-prefix-caching", action="store_true")
    p.add_argument("--http-max-concurrency", type=int, default=None,
                   help="streams open at once to the server (default: --max-num-seqs, the gRPC worker's capacity)")
    p.add_argument("--tokenizer", default=None, help="load this tokenizer in vllm serve (else --skip-tokenizer-init)")
    p.add_argument("--server-args", default="", help="more flags for vllm serve")
    p.add_argument("--commit", type=commit_arg, default=None, help="the commit measured (default: this copy's)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    # the gRPC worker is started by vllm_compare's helpers: dummy weights, the engine's own dtype
    p.set_defaults(real_model=False, dtype=None)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import torch

    gpu = torch.cuda.get_device_name(0)
    stamp = {"commit": args.commit or git_commit(), "gpu": gpu, "gpus": 1,
             "command": "python -m harness.perf.serve_compare " + " ".join(map(shlex.quote, argv)),
             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="serve-compare-"))
    dataset, warmup = workdir / "synthetic.json", workdir / "warmup.json"
    dataset.write_text(json.dumps(synthetic_records(args.prompts, args.seed)))
    warmup.write_text(json.dumps(synthetic_records(WARMUP_PROMPTS, args.seed + 1)))
    port = free_port()
    started = time.monotonic()
    server = VllmServer(server_command(args, port), port, workdir / "vllm-serve.log")
    try:
        server.wait_ready()
        server.probe()
        print(f"vllm serve ready in {time.monotonic() - started:.0f} s", flush=True)
        http = measure([endpoint(port, args.http_max_concurrency or args.max_num_seqs)], dataset, warmup, args, workdir)
        print("http", json.dumps({k: v["tokens_per_s"] for k, v in http.items()}), flush=True)
    finally:
        server.stop()
    workers = vc.start_workers(args, [0], workdir)
    try:
        grpc = measure([workers[0].address], dataset, warmup, args, workdir)
        print("grpc", json.dumps({k: v["tokens_per_s"] for k, v in grpc.items()}), flush=True)
    finally:
        for worker in workers:
            worker.stop()
    result = {"summary": summarize(http, grpc), "http": http, "grpc": grpc, "prompts": args.prompts,
              "server_qps": args.server_qps, "server_requests": args.server_requests,
              "vllm_serve": server_command(args, port), "seconds": round(time.monotonic() - started, 1), **stamp}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"serve-compare-{device_slug(gpu)}-{revision_tag(stamp['commit'])}.json"
    path.write_text(json.dumps(result, indent=2))
    s = result["summary"]
    print(f"\n{gpu}, {args.prompts} prompts, 128 out each; Server {args.server_requests} requests at {args.server_qps} qps")
    print(f"Offline tokens/s  vllm serve via HTTP {s['offline_tokens_per_s_http']:10.1f}   gRPC worker "
          f"{s['offline_tokens_per_s_grpc']:10.1f}   ratio {s['offline_ratio_http_to_grpc']:.4f}")
    print(f"Server TTFT p50   vllm serve via HTTP {s['server_ttft_p50_ms_http']:8.2f} ms   gRPC worker "
          f"{s['server_ttft_p50_ms_grpc']:8.2f} ms   added {s['server_added_ttft_p50_ms']:+.2f} ms")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
