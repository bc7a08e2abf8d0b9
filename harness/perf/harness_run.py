"""One short harness run as the performance scripts make it: a short-run user.conf, every sample
forced to max tokens, INVALID allowed; returns the run directory and LoadGen's results.

`harness.tune` passes its own user.conf text and output folder. The harness runs in its own session,
so a Ctrl-C at the caller's terminal reaches the caller only; the caller's KeyboardInterrupt stops
the run (SIGTERM, then SIGKILL: LoadGen ignores SIGINT) before it propagates.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time

from harness.benchmarks.definitions import LLAMA3_1_8B
from harness.run.settings import short_run_user_conf
from harness.artifacts.verdict import read_detail_log


def _run(command: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except BaseException:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def run_harness(addresses: list[str], dataset: pathlib.Path, samples: int, scenario: str, workdir: pathlib.Path,
                qps: float = 1.0, extra=(), *, conf_text: str | None = None, output: pathlib.Path | None = None,
                force_output_tokens: bool = True) -> tuple[pathlib.Path, dict]:
    stamp = time.time_ns()
    conf = workdir / f"user-{scenario}-{stamp}.conf"
    conf.write_text(conf_text if conf_text is not None else
                    short_run_user_conf(LLAMA3_1_8B.model_name, samples, qps=qps, offline_qps=1,
                                        offline_queries=samples, server_min_duration_ms=0))
    out = output or workdir / f"runs-{scenario}-{len(addresses)}-{stamp}"
    before = set(out.iterdir()) if out.is_dir() else set()
    proc = _run([sys.executable, "-m", "harness", "--quiet", "--scenario", scenario, "--workers", ",".join(addresses),
                 "--dataset", str(dataset), "--user-conf", str(conf), "--output", str(out), "--allow-invalid",
                 "--no-history",  # probes of a search are the search's record (tune.json), not operated runs
                 *(["--force-output-tokens"] if force_output_tokens else []), *extra], cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr[-2000:]}")
    run_dir = sorted(p for p in set(out.iterdir()) - before if p.is_dir())[-1]
    return run_dir, read_detail_log(run_dir / "mlperf_log_detail.txt").results
