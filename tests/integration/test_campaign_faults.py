"""The campaign before and during its steps, with real processes: bad config (exit 2, one line per
problem), workers that do not answer (exit 3 before any run), Ctrl-C in the middle of a run (the run
stops cleanly, the state says interrupted, the plan of a re-run says so), a malformed campaign
variable refused by `harness run`."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from helpers import REPO, campaign_state, free_port, interrupt_when_ready, manifest_of, sigint_ignored
from helpers import run_campaign as campaign

def base(tmp_path, dataset, workers: str, extra: str = "") -> str:
    return (f'scenarios = ["Offline"]\nsteps = ["performance"]\noutput = "{tmp_path / "out"}"\n'
            f'organisation = "Acme"\ndataset = "{dataset}"\n{extra}\n{workers}\n')


def test_bad_config_is_one_line_per_problem(tmp_path):
    path = tmp_path / "nightly.toml"
    path.write_text('scenarios = ["Offline"]\nsteps = ["performance", "accuracy", "perf"]\norganisation = 3\n'
                    '[workers]\naddresses = ["127.0.0.1:1"]\n')
    result = campaign(path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {path}: steps[2]: unknown step 'perf' (choose from find-qps, performance, accuracy, TEST06, package, "
        f"check)",
        f"error: {path}: output: required key is missing",
        f"error: {path}: organisation: Input should be a valid string"]
    assert not (tmp_path / "out").exists()


def test_unreachable_workers_fail_before_any_run(tiny_dataset, tmp_path):
    port = free_port()  # nothing listens there
    path = tmp_path / "c.toml"
    path.write_text(base(tmp_path, tiny_dataset, f'[workers]\naddresses = ["127.0.0.1:{port}"]\n'
                                                 f'reachable_timeout_s = 1'))
    result = campaign(path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.strip() == (f"error: workers: 127.0.0.1:{port} unreachable (DEADLINE_EXCEEDED within 1 s); "
                                     f"no step was run")
    assert not (tmp_path / "out" / "runs").exists()


def test_ctrl_c_stops_the_running_step_cleanly_and_the_rerun_resumes(tiny_dataset, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(base(tmp_path, tiny_dataset,
                         '[workers.local]\nengine = "sim"\nmodel = "sim"\ncount = 1\n'
                         'args = ["--vocab-size", "1024", "--step-ms", "50", "--max-seqs", "2"]',
                         "[loadgen]\nmin_duration_ms = 0\n[run]\nmax_new_tokens = 64\nmin_new_tokens = 2"))
    proc = campaign(path, popen=True, preexec_fn=sigint_ignored)

    def step_running() -> bool:
        steps = campaign_state(tmp_path / "out").get("steps", {})
        return bool(steps.get("performance/Offline", {}).get("pid")
                    and list((tmp_path / "out" / "runs").rglob("manifest.json")))
    out, err = interrupt_when_ready(proc, step_running, timeout=90)  # a missed signal: 13368 queries, hours
    assert proc.returncode == 130, out + err
    record = campaign_state(tmp_path / "out")["steps"]["performance/Offline"]
    assert record["status"] == "interrupted"
    assert manifest_of(pathlib.Path(record["run_dir"]))["status"] == "interrupted"
    plan = campaign(path, "--dry-run")
    assert plan.returncode == 0 and "performance/Offline          run      (was interrupted)" in plan.stdout


def test_run_refuses_a_malformed_campaign_variable(tiny_dataset, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), MLPERF_HARNESS_CAMPAIGN="{not json")
    result = subprocess.run([sys.executable, "-m", "harness", "--quiet", "--workers", "127.0.0.1:1", "--dataset",
                             str(tiny_dataset), "--output", str(tmp_path / "runs")], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: $MLPERF_HARNESS_CAMPAIGN: not valid JSON"), result.stderr
