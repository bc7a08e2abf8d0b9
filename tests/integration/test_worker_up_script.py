"""scripts/worker_up.sh, the GPU scripts' worker start: a real worker on a kernel-picked port, and a
worker that dies before READY ends the wait at once with its log instead of after the deadline."""
from __future__ import annotations

import pathlib
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "worker_up.sh"


def run_bash(body: str, tmp_path: pathlib.Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . "{SCRIPT}"; {body}'], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def test_start_worker_reports_the_picked_address(tmp_path):
    log = tmp_path / "worker.log"
    done = run_bash(f'start_worker "{log}" --engine sim --model sim; echo "ADDRESS $worker_address"; '
                    'python -c "import socket,sys; h,p=sys.argv[1].rsplit(\':\',1); '
                    'socket.create_connection((h,int(p)),2)" "$worker_address"', tmp_path)
    assert done.returncode == 0, done.stderr
    address = done.stdout.split("ADDRESS ")[1].split()[0]
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0


def test_a_worker_that_dies_ends_the_wait_with_its_log(tmp_path):
    log = tmp_path / "worker.log"
    started = time.monotonic()
    done = run_bash(f'WORKER_READY_S=300 start_worker "{log}" --engine sim --model sim --preset /nonexistent/p.json; echo NOT_REACHED',
                    tmp_path)
    assert done.returncode == 1
    assert "NOT_REACHED" not in done.stdout
    assert "worker exited before READY" in done.stderr and "--preset /nonexistent/p.json: cannot read it" in done.stderr
    assert time.monotonic() - started < 60


def test_every_started_worker_is_killed_when_the_script_exits(tmp_path):
    done = run_bash(f'start_worker "{tmp_path}/a.log" --engine sim --model sim; first=$worker; '
                    f'start_worker "{tmp_path}/b.log" --engine sim --model sim; echo "PIDS $first $worker"',
                    tmp_path)
    assert done.returncode == 0, done.stderr
    pids = [int(p) for p in done.stdout.split("PIDS ")[1].split()]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(pathlib.Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.2)
    assert not any(pathlib.Path(f"/proc/{p}").exists() for p in pids), "a worker outlived the script"
