"""One short harness run as the performance scripts make it: a short-run user.conf, every sample
forced to max tokens, INVALID allowed; returns the run directory and LoadGen's results."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import time

from harness.benchmarks.definitions import LLAMA3_1_8B
from harness.run.settings import short_run_user_conf
from harness.run.verdict import read_detail_log


def run_harness(addresses: list[str], dataset: pathlib.Path, samples: int, scenario: str, workdir: pathlib.Path,
                qps: float = 1.0, extra=()) -> tuple[pathlib.Path, dict]:
    stamp = time.time_ns()
    conf = workdir / f"user-{scenario}-{stamp}.conf"
    conf.write_text(short_run_user_conf(LLAMA3_1_8B.model_name, samples, qps=qps, offline_qps=1,
                                        offline_queries=samples, server_min_duration_ms=0))
    out = workdir / f"runs-{scenario}-{len(addresses)}-{stamp}"
    proc = subprocess.run([sys.executable, "-m", "harness", "--quiet", "--scenario", scenario, "--workers",
                           ",".join(addresses), "--dataset", str(dataset), "--user-conf", str(conf), "--output",
                           str(out), "--allow-invalid", "--force-output-tokens", *extra],
                          capture_output=True, text=True, cwd=workdir)
    if proc.returncode != 0:
        raise RuntimeError(f"harness failed ({proc.returncode}): {proc.stderr[-2000:]}")
    run_dir = next(out.iterdir())
    return run_dir, read_detail_log(run_dir / "mlperf_log_detail.txt").results
