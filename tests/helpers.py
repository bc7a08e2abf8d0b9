"""Helpers for tests that run `python -m harness` as a process and read its run directory, and a
submission system description with every field."""
from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys
import time

from harness.submission.rules import SYSTEM_REQUIRED_FIELDS

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = "closed/Acme/results/sys/llama3.1-8b"

# An Interactive sim worker whose knee follows from its parameters (step 5 ms + 0.6 ms per decoding
# sequence, 8 output tokens of ~1000-token prompts at 1.4 M prompt tokens/s): a step lasts
# s = a / (1 - lambda (L b + p / P)), so the mean TPOT reaches the 30 ms limit at
# lambda* = (1 - 5/30) / (8 x 0.0006 + 1000 / 1.4e6) = 151 qps and the worker saturates at 182 qps;
# a p99 is above the mean, so the highest valid rate lies below 151.
INTERACTIVE_SIM = ("--step-ms", "5", "--step-ms-per-seq", "0.6", "--max-seqs", "512", "--prefill-tps", "1400000")
INTERACTIVE_KNEE = (1 - 5 / 30) / (8 * 0.0006 + 1000 / 1.4e6)


def run_harness(*args: str, cwd: pathlib.Path, timeout: float = 240) -> subprocess.CompletedProcess:
    args = [str(a) for a in args]
    if not (args and args[0] in ("package", "check", "accuracy", "synthetic", "report", "history", "schedule", "cluster")):
        args = ["--quiet", *args]
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def group_alive(pgid: int) -> bool:
    """Whether any process of the group `pgid` is left (a worker runs in its own session: pgid = its pid)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def only_run_dir(output: pathlib.Path) -> pathlib.Path:
    runs = sorted(p for p in output.iterdir() if p.is_dir())
    assert len(runs) == 1, runs
    return runs[0]


def manifest_of(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def system_json(**overrides) -> dict:
    system = {f: "x" for f in SYSTEM_REQUIRED_FIELDS}
    system.update(division="closed", submitter="Acme", status="available", system_type="datacenter",
                  system_name="sys", number_of_nodes=1, accelerators_per_node=8)
    system.update(overrides)
    return system


def write_accuracy_log(path: pathlib.Path, outputs: dict[int, list[int]], duplicate_of: int | None = None) -> None:
    """An mlperf_log_accuracy.json as LoadGen writes it (int32 hex), optionally with a duplicate entry."""
    import numpy as np
    entries = [{"seq_id": i, "qsl_idx": idx, "data": np.asarray(ids, "<i4").tobytes().hex().upper(),
                "token_count": len(ids)} for i, (idx, ids) in enumerate(outputs.items())]
    if duplicate_of is not None:
        entries.append({"seq_id": 99, "qsl_idx": duplicate_of, "data": "00000000", "token_count": 1})
    path.write_text(json.dumps(entries))


def write_run_dir(parent: pathlib.Path, name: str, *, scenario: str = "Offline", mode: str = "PerformanceOnly",
                  validity: str = "VALID", tokens_per_s: float = 1000.0, status: str = "done",
                  started_at: str = "2026-11-20T19:00:00+00:00", worker_tokens: tuple[int, ...] = (500, 500),
                  results: dict | None = None, **manifest) -> pathlib.Path:
    """A run directory as the harness leaves it (manifest.json, LoadGen's detail log), for history tests
    that need many runs with chosen figures."""
    run_dir = parent / name
    run_dir.mkdir(parents=True)
    workers = [{"address": f"127.0.0.1:{5000 + i}", "worker_id": f"w{i}", "engine": "sim", "model": "sim",
                "versions": {"sim": "1", "node.cpu": "Test CPU", "node.nvml": "absent: test",
                             "identity.engine_args_hash": "e1"}} for i in range(len(worker_tokens))]
    rows = [{"address": w["address"], "name": w["worker_id"], "completed": tokens // 100, "output_tokens": tokens,
             "failures": 0, "reissued": 0, "state": "ready"} for w, tokens in zip(workers, worker_tokens)]
    data = {"command": ["harness", "--scenario", scenario], "versions": {"harness": "0.1.0"},
            "git_revision": "abc123", "host": "testhost", "started_at": started_at, "updated_at": started_at,
            "trigger": "manual", "status": status, "scenario": scenario, "mode": mode, "model_name": "llama3_1-8b",
            "workers": workers, "dispatch": {"elapsed_s": 1.0, "workers": rows}, "validity": validity,
            "num_errors": 0, "invalid_reasons": [] if validity == "VALID" else ["min duration not met"],
            "accepted": validity == "VALID", **manifest}
    (run_dir / "manifest.json").write_text(json.dumps(data))
    records = {"result_validity": validity, "result_tokens_per_second": tokens_per_s,
               "result_samples_per_second": tokens_per_s / 100, **(results or {}), "power_end": "0"}
    (run_dir / "mlperf_log_detail.txt").write_text("".join(
        f':::MLLOG {json.dumps({"key": k, "value": v, "metadata": {}})}\n' for k, v in records.items()))
    return run_dir


def sigint_ignored() -> None:
    """preexec_fn: the child starts as a script's background job (`cmd &` without job control) starts,
    with SIGINT ignored. A test that sends SIGINT starts its command so, whatever started the suite
    (`pytest ... &` passes the ignored SIGINT on to every child): the command must take SIGINT back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def interrupt_when_ready(proc: subprocess.Popen, ready, timeout: float, poll_s: float = 0.1) -> tuple[str, str]:
    """Waits (up to 60 s, else fails) until ready() is true, lets the work run 1 s more, sends SIGINT and
    returns the process's (stdout, stderr); the process is killed whatever happens (one that missed the
    signal would run on for hours)."""
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"not ready to interrupt within 60 s (exit code {proc.poll()})"
            time.sleep(poll_s)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=timeout)
    finally:
        proc.kill()


def run_campaign(*args, popen: bool = False, timeout: float = 300, preexec_fn=None):
    """`python -m harness campaign ARGS...` as a process (Popen with popen=True: stdout and stderr piped)."""
    cmd = [sys.executable, "-m", "harness", "campaign", *map(str, args)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=preexec_fn)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def campaign_state(out: pathlib.Path) -> dict:
    """The campaign's state file, or {} while it is not written yet."""
    try:
        return json.loads((out / "campaign-state.json").read_text())
    except (OSError, ValueError):
        return {}


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a child process to bind: a port
    from bind(0) can be handed to any outgoing connection before the child binds it (a full suite
    lost a run to "port ... in use")."""
    low = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, low - 12000), low), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
