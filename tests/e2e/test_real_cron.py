"""`schedule add/list/remove --backend crontab` against Debian's real `crontab` (cron's package, installed
by .ci/run), and, as root, the real cron daemon firing a scheduled run into the history.

The user's crontab is backed up first (a copy in the test's tmp folder too) and restored whatever
happens, checked byte for byte. systemd timers are not run for real anywhere in the suite: CI has no
init system (systemd cannot run in its container), so those units are checked with
`systemd-analyze verify` only (tests/unit/ops/test_ops_schedules.py).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import manifest_of, run_harness
from test_operated_runs import harness_env, history_json, inputs, sim_run  # noqa: F401 - inputs is a fixture

FIRE_WAIT_S = 100  # cron fires on the next minute boundary (<= 60 s), then the run takes ~10 s


def _crontab(*args: str, text: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["crontab", *args], input=text, capture_output=True, text=True, timeout=30)


def _is_real_crontab(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"  # not a stand-in script on PATH


@pytest.fixture
def user_crontab(tmp_path):
    """The current user's crontab, backed up before the test and restored after it (even on failure)."""
    path = shutil.which("crontab")
    if not path or not _is_real_crontab(path):
        pytest.skip("cron's crontab is not installed (apt-get install cron; .ci/run installs it)")
    listed = _crontab("-l")
    if listed.returncode == 0:
        backup: str | None = listed.stdout
    elif "no crontab" in listed.stderr.lower():
        backup = None
    else:
        pytest.skip(f"crontab -l fails for this user: {listed.stderr.strip()}")
    (tmp_path / "crontab.backup").write_text(backup if backup is not None else "# (no crontab)\n")
    yield backup
    restored = _crontab("-", text=backup) if backup is not None else _crontab("-r")
    now = _crontab("-l")
    if backup is None:
        assert now.returncode != 0 and "no crontab" in now.stderr.lower(), \
            f"could not remove the test's crontab: {restored.stderr or now.stdout}"
    else:
        assert now.stdout == backup, f"crontab NOT restored ({restored.stderr.strip()}); the backup is in " \
                                     f"{tmp_path / 'crontab.backup'}"


def _add(tmp_path, runs, name: str, cron: str, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "schedule", "add", "--cron", cron, "--name", name,
                           "--output", runs, "--backend", "crontab", "--", *command],
                          cwd=tmp_path, env=harness_env(), capture_output=True, text=True, timeout=60)


def test_real_crontab_gets_our_line_beside_the_users_and_loses_only_ours(user_crontab, inputs, tmp_path):
    runs, name = tmp_path / "runs", f"ci-crontab-{os.getpid()}"
    user_lines = (user_crontab or "") + f"# a line of the user's own ({name})\n"
    assert _crontab("-", text=user_lines).returncode == 0
    add = _add(tmp_path, runs, name, "0 19 * * *", sim_run(inputs, runs))
    assert add.returncode == 0, add.stderr
    [entry] = [line for line in _crontab("-l").stdout.splitlines() if line.endswith(f"schedule: {name}")]
    assert f"installing (crontab):\n{entry}\n" in add.stdout  # shows exactly what it installs
    assert entry.startswith("0 19 * * * ") and f"schedule fire {name} --output {runs}" in entry
    assert _crontab("-l").stdout == user_lines + entry + "\n"

    listed = run_harness("schedule", "list", "--output", runs, cwd=tmp_path)
    assert f"schedule {name}: '0 19 * * *'" in listed.stdout and "crontab: installed" in listed.stdout, listed.stdout
    removed = run_harness("schedule", "remove", name, "--output", runs, cwd=tmp_path)
    assert removed.returncode == 0 and f"crontab: removed {name}" in removed.stdout, removed.stdout + removed.stderr
    assert _crontab("-l").stdout == user_lines  # the user's lines, untouched


def _cron_running() -> bool:
    try:
        pid = int(pathlib.Path("/var/run/crond.pid").read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def test_the_real_cron_daemon_fires_a_scheduled_run_into_the_history(user_crontab, inputs, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("starting the cron daemon needs root (CI runs as root)")
    if not shutil.which("cron"):
        pytest.skip("the cron daemon is not installed (apt-get install cron; .ci/run installs it)")
    if user_crontab and any(line.strip() and not line.startswith("#") for line in user_crontab.splitlines()):
        pytest.skip("root's crontab has entries of its own: starting cron here would run them")
    runs, name = tmp_path / "runs", f"ci-cron-{os.getpid()}"
    add = _add(tmp_path, runs, name, "* * * * *", sim_run(inputs, runs, 1.0, "--quiet"))
    assert add.returncode == 0, add.stderr
    daemon = None if _cron_running() else subprocess.Popen(["cron", "-f"], stdout=subprocess.DEVNULL,
                                                           stderr=open(tmp_path / "cron.err", "w"))
    try:
        deadline = time.monotonic() + FIRE_WAIT_S
        log = runs / "schedule-logs" / f"{name}.log"
        while time.monotonic() < deadline:
            done = [p for p in runs.glob("2*/manifest.json") if '"status": "done"' in p.read_text()]
            if done and history_json(tmp_path, runs, "--trigger", "scheduled"):
                break
            assert daemon is None or daemon.poll() is None, (tmp_path / "cron.err").read_text()
            time.sleep(1)
        else:
            raise AssertionError(f"cron did not fire {name} within {FIRE_WAIT_S} s; its log: "
                                 f"{log.read_text() if log.exists() else '(none)'}; cron: "
                                 f"{(tmp_path / 'cron.err').read_text() if daemon else 'already running'}")
    finally:
        _crontab("-", text=user_crontab) if user_crontab is not None else _crontab("-r")  # before the next minute
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=10)
    [record] = history_json(tmp_path, runs, "--trigger", "scheduled")
    assert record["schedule"] == name and record["verdict"] == "VALID"
    [run_dir] = [p.parent for p in runs.glob("2*/manifest.json")]
    assert record["run_dir"] == str(run_dir) and manifest_of(run_dir)["status"] == "done"
    fired = log.read_text()  # cron's own output of the job: the firing line, then the run's summary
    assert fired.startswith(f"schedule {name}: python -m harness --scenario Offline") and "Result is : VALID" in fired
