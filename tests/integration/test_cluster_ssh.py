"""`python -m harness cluster` against a real OpenSSH server on loopback: two sim workers brought up
"remotely" on 127.0.0.1, a harness run through them, a killed worker seen by `status`, `down`
leaving no process; and the faults that must start nothing anywhere."""
from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness.deploy.agent import start_time
from sut.build_info import source_revision
from sut.worker.bench_security import make_certificates
from builds import commit_all, needs_git, pip_wheel, project_checkout
from helpers import REPO, free_port, manifest_of, only_run_dir, run_harness

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("ssh-keygen")),
                                reason="needs Debian's openssh-server (/usr/sbin/sshd) and ssh-keygen "
                                       "(.ci/run installs them)")


def keygen(path: pathlib.Path) -> pathlib.Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "harness-test", "-f", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd -D on a loopback port, as the current user (root in CI), with a host key and a client
    key made here; yields (port, client key, known_hosts)."""
    work = tmp_path_factory.mktemp("sshd")
    host_key, client_key = keygen(work / "host_key"), keygen(work / "client_key")
    (work / "authorized_keys").write_text((work / "client_key.pub").read_text())
    (work / "authorized_keys").chmod(0o600)
    port = free_port()
    config = work / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"AuthorizedKeysFile {work}/authorized_keys",
        f"PidFile {work}/sshd.pid", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
        "LogLevel ERROR", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(work / "sshd.log", "w"))
    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} " + " ".join((work / "host_key.pub").read_text().split()[:2]) + "\n")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start: {(work / 'sshd.log').read_text()}")
            time.sleep(0.05)
    yield port, client_key, known_hosts
    server.terminate()
    server.wait(10)


def host_entry(sshd, name: str, base_port: int, gpus="[0, 1]", checkout=True, **overrides) -> str:
    port, key, known = sshd
    entry = {"address": "127.0.0.1", "name": name, "port": port, "user": os.environ.get("USER") or
             __import__("getpass").getuser(), "key_file": str(key), "known_hosts": str(known),
             "python": sys.executable, "base_port": base_port}
    entry.update(overrides)
    lines = [f"  - {k}: {v}" if i == 0 else f"    {k}: {v}" for i, (k, v) in enumerate(entry.items())]
    return "\n".join(lines + [f"    gpus: {gpus}"] + ([f"    env: {{PYTHONPATH: {REPO}}}"] if checkout else []))


def cluster_file(tmp_path: pathlib.Path, *hosts: str, name: str = "t", extra: str = "",
                 engine_args: str = "{step-ms: 2, max-seqs: 16}") -> pathlib.Path:
    path = tmp_path / "cluster.yaml"
    path.write_text("\n".join([f"name: {name}", "engine: sim", "model: sim-model", "bind: 127.0.0.1",
                               f"remote_dir: {tmp_path / 'remote'}", "ready_timeout_s: 60",
                               f"engine_args: {engine_args}", extra, "hosts:", *hosts, ""]))
    return path



def cluster(*args) -> subprocess.CompletedProcess:
    return run_harness("cluster", *map(str, args), cwd=REPO, timeout=120)


def pids(folder: pathlib.Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in folder.glob("*.pid")}


def alive(pid: int) -> bool:
    return start_time(pid) is not None  # None: gone, or a zombie


def test_up_run_kill_status_down(sshd, tmp_path, tiny_dataset, smoke_conf):
    """Over TLS with a token: health checks, the run and status all go through them."""
    files = make_certificates(tmp_path)
    token = pathlib.Path(files["token"]).read_text().strip()
    file = cluster_file(tmp_path, host_entry(sshd, "h1", free_port()), extra=(
        f"security: {{token_file: {files['token']}, tls_ca: {files['ca']}, worker_token_file: {files['token']}, "
        f"worker_tls_cert: {files['cert']}, worker_tls_key: {files['key']}}}"))
    folder = tmp_path / "remote" / "t"
    try:
        up = cluster("up", file)
        assert up.returncode == 0, up.stderr
        assert up.stdout.count("SERVING") == 2, up.stdout
        started = pids(folder)
        assert sorted(started) == ["h1-gpu0", "h1-gpu1"]
        environ = pathlib.Path(f"/proc/{started['h1-gpu1']}/environ").read_bytes().split(b"\0")
        assert b"CUDA_VISIBLE_DEVICES=1" in environ

        out = tmp_path / "runs"
        run = run_harness("--cluster", file, "--dataset", tiny_dataset, "--user-conf", smoke_conf(16),
                          "--output", out, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        manifest = manifest_of(only_run_dir(out))
        assert manifest["cluster"]["name"] == "t" and not manifest["cluster"]["brought_up"]
        assert {w["worker_id"] for w in manifest["workers"]} == {"h1:gpu0", "h1:gpu1"}
        assert all(w["versions"]["identity.revision"] for w in manifest["workers"])
        assert manifest["link_security"]["token"] is True and manifest["link_security"]["tls"] is True
        written = [p for p in [*out.rglob("*"), *(tmp_path / "remote").rglob("*")] if p.is_file()]
        assert written and not [p for p in written if token in p.read_text(errors="replace")]
        assert token not in up.stdout + up.stderr + run.stdout + run.stderr

        os.kill(started["h1-gpu0"], signal.SIGKILL)
        time.sleep(0.3)
        status = cluster("status", file)
        assert status.returncode == 3
        rows = {line.split("│")[2].strip(): line for line in status.stdout.splitlines() if "│ h1" in line}
        assert "DEAD" in rows["0"] and "SERVING" in rows["1"], status.stdout

        logs = cluster("logs", "h1:1", file, "--lines", "5")
        assert logs.returncode == 0 and "READY 127.0.0.1:" in logs.stdout, logs
    finally:
        down = cluster("down", file)
    assert down.returncode == 0, down.stderr
    assert "h1-gpu0 (pid" in down.stdout and "had exited" in down.stdout
    assert not any(alive(pid) for pid in started.values())
    assert not list(folder.glob("*.pid"))


def test_run_with_up_starts_and_stops_the_cluster(sshd, tmp_path, tiny_dataset, smoke_conf):
    (tmp_path / "p.json").write_text('{"format": "mlperf-harness-preset/1", "engine": "sim", '
                                     '"engine_args": {"max-seqs": 7}}')
    file = cluster_file(tmp_path, host_entry(sshd, "h1", free_port(), gpus="[[0], [1]]"), name="u",
                        extra="preset: p.json", engine_args="{step-ms: 2}")
    out = tmp_path / "runs"
    run = run_harness("--cluster", file, "--up", "--dataset", tiny_dataset, "--user-conf", smoke_conf(8),
                      "--output", out, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "bringing up 2 workers" in run.stdout and "stopped h1-gpu0" in run.stderr
    manifest = manifest_of(only_run_dir(out))
    assert manifest["cluster"]["brought_up"] is True
    assert [w["engine_args"]["max_seqs"] for w in manifest["workers"]] == ["7", "7"]  # the preset, shipped
    assert not list((tmp_path / "remote" / "u").glob("*.pid"))
    logs = list((tmp_path / "remote" / "u").glob("*.log"))
    assert len(logs) == 2 and all("READY" in log.read_text() for log in logs)


def _occupied(port: int) -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


FAULTS = {
    "unreachable": (lambda sshd, tmp: {"port": free_port()}, "cannot reach 127.0.0.1:"),
    "wrong key": (lambda sshd, tmp: {"key_file": keygen(tmp / "other_key")}, "refused the key"),
    "missing venv": (lambda sshd, tmp: {"python": "/nonexistent/venv/bin/python"}, "not found (missing venv?)"),
    "port in use": (None, "in use on 127.0.0.1"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_host_starts_nothing_anywhere(sshd, tmp_path, fault):
    make, expected = FAULTS[fault]
    bad_port = free_port()
    holder = _occupied(bad_port) if fault == "port in use" else None
    file = cluster_file(tmp_path, host_entry(sshd, "good", free_port(), gpus="[0]"),
                        host_entry(sshd, "bad", bad_port, gpus="[0]", **(make(sshd, tmp_path) if make else {})))
    try:
        up = cluster("up", file)
    finally:
        if holder:
            holder.close()
    errors = [line for line in up.stderr.splitlines() if line.startswith("error:")]
    assert up.returncode == 3 and len(errors) == 1, up.stderr
    assert errors[0].startswith("error: bad: ") and expected in errors[0], errors
    assert not list(tmp_path.glob("remote/*/*.pid")), "nothing may start when a host fails"


def test_partial_keeps_the_hosts_that_came_up_and_down_cleans_up(sshd, tmp_path):
    file = cluster_file(tmp_path, host_entry(sshd, "good", free_port(), gpus="[0]"),
                        host_entry(sshd, "bad", free_port(), gpus="[0]", python="/nonexistent/venv/bin/python"))
    try:
        partial = cluster("up", file, "--partial")
        started = pids(tmp_path / "remote" / "t")
    finally:
        down = cluster("down", file)
    assert partial.returncode == 3 and "error: bad: python /nonexistent/venv/bin/python not found" in partial.stderr
    assert list(started) == ["good-gpu0"] and "SERVING" in partial.stdout
    assert "good: stopped good-gpu0" in down.stdout and "error: bad: " in down.stderr
    assert down.returncode == 3  # a host it could not reach is named
    assert not any(alive(pid) for pid in started.values())


def test_an_interrupted_run_stops_the_cluster_it_brought_up(sshd, tmp_path, tiny_dataset, smoke_conf):
    file = cluster_file(tmp_path, host_entry(sshd, "h1", free_port(), gpus="[0]"), name="i",
                        engine_args="{step-ms: 500, max-seqs: 1}")
    folder = tmp_path / "remote" / "i"
    harness = subprocess.Popen([sys.executable, "-m", "harness", "--quiet", "--cluster", str(file), "--up",
                                "--dataset", str(tiny_dataset), "--user-conf", str(smoke_conf(32)),
                                "--output", str(tmp_path / "runs")], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("runs/*/manifest.json")) or '"running"' not in next(
            tmp_path.glob("runs/*/manifest.json")).read_text():
        assert harness.poll() is None and time.monotonic() < deadline, harness.communicate()
        time.sleep(0.1)
    started = pids(folder)
    harness.send_signal(signal.SIGINT)
    stdout, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 130, stderr
    assert "cluster i: h1: stopped h1-gpu0" in stderr
    assert list(started) == ["h1-gpu0"] and not any(alive(pid) for pid in started.values())
    assert not list(folder.glob("*.pid"))


def test_install_ships_this_checkout_into_the_host_venv(sshd, tmp_path):
    venv = tmp_path / "venv"
    file = cluster_file(tmp_path, host_entry(sshd, "h1", free_port(), gpus="[0]", checkout=False,
                                             python=host_venv(venv)), name="w")
    install = cluster("install", file)
    assert install.returncode == 0, install.stderr
    assert "h1: installed mlperf_llm_harness-" in install.stdout
    revision = source_revision(REPO)  # this checkout's commit, stamped into the wheel
    assert (f"(revision {revision}) into" if revision else "(no revision stamp") in install.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import sut.worker; print(sut.worker.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert where.stdout.startswith(str(venv)), where
    try:
        up = cluster("up", file)
        assert up.returncode == 0 and "SERVING" in up.stdout, up.stderr
    finally:
        cluster("down", file)


def host_venv(path: pathlib.Path) -> pathlib.Path:
    """A host's venv: its own site-packages first, pip and the rest from the system's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(path)], check=True)
    return path / "bin" / "python"


@needs_git
def test_hosts_installed_from_two_commits_are_mixed_until_allowed(sshd, tmp_path, tiny_dataset, smoke_conf):
    """Installed copies have no .git: each reports the commit stamped into its wheel."""
    checkout = tmp_path / "checkout"
    first = project_checkout(checkout)
    old_wheel = pip_wheel(checkout, tmp_path / "first")
    (checkout / "sut" / "__init__.py").write_text('"""The next commit."""\n__version__ = "0.1.0"\n')
    second = commit_all(checkout, "second")
    new_wheel = pip_wheel(checkout, tmp_path / "second")
    hosts = {name: host_entry(sshd, name, free_port(), gpus="[0]", checkout=False,
                              python=host_venv(tmp_path / f"venv-{name}")) for name in ("h1", "h2")}
    for (name, entry), wheel, revision in zip(hosts.items(), (old_wheel, new_wheel), (first, second)):
        (tmp_path / name).mkdir()
        install = cluster("install", cluster_file(tmp_path / name, entry, name="m"), "--wheel", wheel)
        assert install.returncode == 0, install.stderr
        assert f"{name}: installed {wheel.name} (revision {revision}) into " in install.stdout
    file = cluster_file(tmp_path, *hosts.values(), name="m")
    try:
        up = cluster("up", file)
        assert up.returncode == 0 and up.stdout.count("SERVING") == 2, up.stderr
        refused = run_harness("--cluster", file, "--dataset", tiny_dataset, "--user-conf", smoke_conf(8),
                              "--output", tmp_path / "refused", cwd=tmp_path)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.strip().splitlines()[-1] == (
            f"error: workers run different code revisions (h1:gpu0 {first}, h2:gpu0 {second}): install "
            "one revision on every host, or pass --allow-mixed-revisions"), refused.stderr
        out = tmp_path / "runs"
        allowed = run_harness("--cluster", file, "--allow-mixed-revisions", "--dataset", tiny_dataset,
                              "--user-conf", smoke_conf(8), "--output", out, cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stderr
        workers = manifest_of(only_run_dir(out))["workers"]
        assert {w["worker_id"]: w["versions"]["identity.revision"] for w in workers} == {
            "h1:gpu0": first, "h2:gpu0": second}
    finally:
        cluster("down", file)


def test_run_up_on_a_failing_host_exits_3_naming_it(sshd, tmp_path, tiny_dataset, smoke_conf):
    file = cluster_file(tmp_path, host_entry(sshd, "h1", free_port(), python="/nonexistent/bin/python"), name="f")
    run = run_harness("--cluster", file, "--up", "--dataset", tiny_dataset, "--user-conf", smoke_conf(8),
                      "--output", tmp_path / "runs", cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    assert run.stderr.strip().splitlines()[-1] == (
        "error: h1: python /nonexistent/bin/python not found (missing venv?)")
