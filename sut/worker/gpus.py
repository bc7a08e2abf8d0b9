"""Start one worker per GPU (or per tensor-parallel group) on this host and print the --workers list.

python scripts/launch_workers.py --engine vllm --model DIR --gpus 0,1,2,3 [--tp 1] [--base-port 50051]
    [--host 0.0.0.0] [--advertise HOSTNAME] -- [worker flags...]

Each worker gets its own CUDA_VISIBLE_DEVICES and port. The script waits until every worker is
healthy, prints `--workers host:port,...`, and keeps them running until Ctrl-C or SIGTERM.
Workers on a non-loopback --host need --auth-token-file (with --tls-cert/--tls-key) or
--tls-client-ca after `--`, or --insecure on a trusted network; otherwise each exits 2 saying so:
    python scripts/launch_workers.py --engine vllm --model DIR --gpus 0,1 -- \
        --auth-token-file /etc/mlperf/token --tls-cert server.pem --tls-key server.key
"""
from __future__ import annotations

import argparse
import pathlib
import signal
import socket
import sys
import time

from sut.worker.launch import LaunchError, WorkerProcess, WorkerSpec


def gpu_groups(gpus: list[str], tp: int) -> list[list[str]]:
    if tp < 1 or len(gpus) % tp:
        raise LaunchError(f"--tp {tp}: must divide the {len(gpus)} GPUs of --gpus")
    return [gpus[i:i + tp] for i in range(0, len(gpus), tp)]


def worker_specs(args, extra: list[str]) -> list[WorkerSpec]:
    specs = []
    for i, group in enumerate(gpu_groups([g for g in args.gpus.split(",") if g], args.tp)):
        tp_flags = ["--tensor-parallel-size", str(args.tp)] if args.engine == "vllm" and args.tp > 1 else []
        specs.append(WorkerSpec(args.engine, args.model, host=args.host, port=args.base_port + i,
                                worker_id=f"{args.advertise}:gpu{','.join(group)}",
                                engine_args=tuple(tp_flags + extra), env={"CUDA_VISIBLE_DEVICES": ",".join(group)}))
    return specs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="vllm")
    parser.add_argument("--model", required=True)
    parser.add_argument("--gpus", default=None, help="comma list (default: all visible to torch)")
    parser.add_argument("--tp", type=int, default=1, help="GPUs per worker (tensor parallel)")
    parser.add_argument("--base-port", type=int, default=50051)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--advertise", default=socket.gethostname(), help="host name the coordinator uses")
    parser.add_argument("--log-dir", default="worker-logs")
    parser.add_argument("--ready-timeout", type=float, default=900)
    parser.add_argument("--preset", default=None, metavar="FILE",
                        help="tuned preset passed to every worker (python -m sut.worker --preset)")
    parser.add_argument("worker_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    extra = args.worker_args[1:] if args.worker_args[:1] == ["--"] else args.worker_args
    if args.preset:
        from sut.worker.preset import PresetError, load_preset
        try:
            load_preset(args.preset)
        except PresetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        extra = ["--preset", str(pathlib.Path(args.preset).resolve()), *extra]
    if args.gpus is None:
        import torch
        args.gpus = ",".join(str(i) for i in range(torch.cuda.device_count()))
    try:
        specs = worker_specs(args, extra)
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1
    log_dir = pathlib.Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    workers = [WorkerProcess(spec, log_dir / f"worker-gpu{spec.env['CUDA_VISIBLE_DEVICES'].replace(',', '-')}.log")
               for spec in specs]
    deadline = time.monotonic() + args.ready_timeout
    try:
        for worker in workers:
            worker.wait_ready(deadline)
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for worker in workers:
            worker.stop()
        return 1
    ports = [w.address.rsplit(":", 1)[1] for w in workers]
    print("--workers " + ",".join(f"{args.advertise}:{p}" for p in ports), flush=True)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    try:
        while not stop[0] and all(w.running for w in workers):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    for worker in workers:
        worker.stop()
    return 0
