"""`python -m harness campaign` end to end on local sim workers (the tiny model's dataset and tokenizer):
all three scenarios, accuracy, TEST06, package and check. One campaign runs uninterrupted; a second,
beside it, is killed with SIGKILL in the middle of a step and re-run: it must resume (keeping what
finished, re-running the killed step) and end with the same submission tree.

Scaled down: 32 samples, 8 new tokens, Server/Interactive at 20 qps for at least 3 s (a submission:
13368 samples, 600 s). The two campaigns run side by side to keep the wall time near one minute.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import time

from helpers import campaign_state as state_of
from helpers import manifest_of, run_campaign, system_json

SIM_ARGS = ["--vocab-size", "1024", "--step-ms", "2", "--prefill-tps", "1000000"]


def write_config(tmp_path: pathlib.Path, name: str, dataset, tokenizer, **overrides) -> pathlib.Path:
    system = json.dumps(system_json(system_name="simbox"))
    lines = [
        'scenarios = ["Offline", "Server", "Interactive"]',
        'steps = ["performance", "accuracy", "TEST06", "package", "check"]',
        f'output = "{tmp_path / name}"', 'organisation = "Acme"', 'allow_unofficial = true',
        f'dataset = "{dataset}"', f'tokenizer = "{tokenizer}"', f"system = '{tmp_path / 'system.json'}'",
        "[workers.local]", 'engine = "sim"', 'model = "sim"', "count = 2", f"args = {json.dumps(SIM_ARGS)}",
        "[loadgen]", "min_duration_ms = 3000", "min_query_count = 16", "offline_target_qps = 10",
        "target_qps = {Server = 20.0, Interactive = 20.0}",
        "[run]", "max_new_tokens = 8", "min_new_tokens = 2"]
    for key, value in overrides.items():
        lines.insert(0, f"{key} = {value}")
    (tmp_path / "system.json").write_text(system)
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for_running(out: pathlib.Path, step_id: str, folder: str, proc, timeout: float = 120) -> dict:
    """The step's record once its run is under way (its run directory has a manifest)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = state_of(out).get("steps", {}).get(step_id, {})
        if record.get("status") == "running" and record.get("pid") and \
                list((out / "runs" / folder).glob("*/manifest.json")):
            return record
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError(f"{step_id} never ran")


def pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of a dead parent is reaped by init; treat "Z" as gone
            if pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def tree(root: pathlib.Path) -> dict[str, str]:
    """Relative path -> comparable content: LoadGen's logs and the accuracy log hold timings and
    completion order, so only their presence is compared; worker ports in READMEs are masked."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = str(path.relative_to(root))
        if "/src/" in f"/{rel}" or path.name.startswith("mlperf_log_") or path.name == "verify_accuracy.txt":
            out[rel] = "(present)"
        elif path.name == "accuracy.txt":
            out[rel] = path.read_text().splitlines()[0]  # the scores; the hash covers a log in completion order
        else:
            out[rel] = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", path.read_text())
    return out


def test_campaign_killed_mid_step_resumes_to_the_same_tree(tiny_model, tiny_dataset, tmp_path):
    whole = run_campaign(write_config(tmp_path, "whole", tiny_dataset, tiny_model), popen=True)
    config = write_config(tmp_path, "killed", tiny_dataset, tiny_model)
    out = tmp_path / "killed"
    first = run_campaign(config, popen=True)
    record = wait_for_running(out, "performance/Server", "performance-Server", first)
    time.sleep(0.5)
    first.kill()
    first.wait()
    state = state_of(out)
    assert state["steps"]["performance/Server"]["status"] == "running"
    assert state["steps"]["performance/Offline"]["status"] in ("passed", "invalid")
    assert pid_gone(record["pid"], 20), "the step outlived its killed campaign"
    assert all(pid_gone(pid, 10) for pid in state["workers"]["local_pids"]), "local workers outlived the campaign"

    resumed = run_campaign(config)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # INVALID short runs, check problems
    plan = resumed.stdout.split("campaign summary")[0]
    assert re.search(r"performance/Offline\s+keep", plan), plan
    assert re.search(r"performance/Server\s+run\s+\(was interrupted\)", plan), plan
    assert re.search(r"package\s+run", plan), plan
    steps = state_of(out)["steps"]
    assert steps["performance/Server"]["attempts"] == 2
    killed_attempt = only_run(out / "attempts" / "performance-Server" / "attempt-1")
    assert manifest_of(killed_attempt)["status"] == "interrupted"  # stopped cleanly by its parent-death SIGINT

    whole_out, whole_err = whole.communicate(timeout=300)
    assert whole.returncode == 1, whole_out + whole_err
    assert tree(tmp_path / "whole" / "submission") == tree(out / "submission")
    check, whole_check = steps["check"], state_of(tmp_path / "whole")["steps"]["check"]
    assert "data" in check and "data" in whole_check, (check, whole_check)
    assert check["data"]["lines"] == whole_check["data"]["lines"] or \
        _digits(check["data"]["lines"]) == _digits(whole_check["data"]["lines"])
    for line in ("min_duration is 3000 ms", "performance_sample_count is 32", "early stopping not met"):
        assert line in resumed.stdout, resumed.stdout
    assert (out / "campaign.md").read_text().count("runs/") >= 9
    run = manifest_of(only_run(out / "runs" / "accuracy-Interactive"))
    assert run["campaign"]["step"] == "accuracy/Interactive" and run["campaign"]["config"]["organisation"] == "Acme"
    assert run["campaign"]["coordinator"]["versions"]["mlcommons-loadgen"]

    again = run_campaign(config, "--dry-run")
    assert again.returncode == 0 and "0 step(s) to run" in again.stdout, again.stdout


def only_run(folder: pathlib.Path) -> pathlib.Path:
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _digits(lines: list[str]) -> list[str]:
    return [re.sub(r"\d+(\.\d+)?", "#", line) for line in lines]
