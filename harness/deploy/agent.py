"""The host side of `cluster`: run by the host's own interpreter over SSH, as
`PYTHON -c <this file's source> COMMAND JSON`, so it imports nothing but the standard library and
needs nothing installed beyond the worker itself. It prints one JSON line.

Every worker runs in a session of its own (its pid is its process group id); its pid file holds
`pid starttime` (the kernel's start time of that pid, /proc/PID/stat field 22), so `stop` signals
exactly the process group it started, never a later process that reused the pid, and never by name.
"""
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]  # a zombie has exited
    except (OSError, IndexError):
        return None


def _read_pid_file(path):
    try:
        pid, started = open(path).read().split()[:2]
        return int(pid), started
    except (OSError, ValueError):
        return None, None


def _alive(path):
    pid, started = _read_pid_file(path)
    return pid, pid is not None and start_time(pid) == started


def _pid_files(folder, prefix):
    """This host's pid files: a home directory shared between hosts (NFS) holds other hosts' too."""
    return sorted(glob.glob(os.path.join(folder, glob.escape(prefix) + "*.pid")))


def _stem(path):
    return os.path.basename(path)[:-len(".pid")]


def preflight(req):
    folder = os.path.expanduser(req["dir"])
    out = {"python": sys.executable, "running": [], "in_use": [], "missing_files": [], "gpus": None,
           "gpu_error": None, "sut": False}
    try:
        import importlib.util
        out["sut"] = importlib.util.find_spec("sut.worker") is not None
    except ImportError:
        pass
    out["running"] = [_stem(p) for p in _pid_files(folder, req["prefix"]) if _alive(p)[1]]
    for host, port in req["ports"]:
        probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
        try:
            probe.bind((host, port))
        except OSError:
            out["in_use"].append(port)
        finally:
            probe.close()
    out["missing_files"] = [f for f in req["files"] if not os.access(os.path.expanduser(f), os.R_OK)]
    try:
        listing = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
        if listing.returncode == 0:
            out["gpus"] = [int(line) for line in listing.stdout.split() if line.strip().isdigit()]
        else:
            out["gpu_error"] = "nvidia-smi: " + (listing.stderr.strip() or listing.stdout.strip())[:200]
    except (OSError, subprocess.TimeoutExpired) as exc:
        out["gpu_error"] = f"nvidia-smi: {exc.strerror if isinstance(exc, OSError) else 'timed out'}"
    return out


def start(req):
    folder = os.path.expanduser(req["dir"])
    os.makedirs(folder, mode=0o700, exist_ok=True)
    started = []
    for worker in req["workers"]:
        log = open(os.path.join(folder, worker["stem"] + ".log"), "w")
        argv = [os.path.expanduser(arg) if arg.startswith("~/") else arg for arg in worker["argv"]]  # no shell here
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, **worker["env"]), start_new_session=True, close_fds=True)
        with open(os.path.join(folder, worker["stem"] + ".pid"), "w") as handle:
            handle.write(f"{process.pid} {start_time(process.pid)}\n")
        process.returncode = 0  # it outlives this script on purpose: no "still running" warning
        started.append({"stem": worker["stem"], "pid": process.pid})
    return {"started": started}


def status(req):
    folder = os.path.expanduser(req["dir"])
    out = {}
    for path in _pid_files(folder, req["prefix"]):
        pid, alive = _alive(path)
        out[_stem(path)] = {"pid": pid, "alive": alive}
    return {"workers": out}


def stop(req):
    folder = os.path.expanduser(req["dir"])
    targets = []
    for path in _pid_files(folder, req["prefix"]):
        pid, alive = _alive(path)
        if alive and os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        targets.append((path, pid, alive))
    deadline = time.monotonic() + req.get("grace_s", 5.0)
    while time.monotonic() < deadline and any(_alive(path)[1] for path, _, _ in targets):
        time.sleep(0.1)
    stopped = []
    for path, pid, was_alive in targets:
        if _alive(path)[1]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        stopped.append({"stem": _stem(path), "pid": pid, "was_alive": was_alive})
    return {"stopped": stopped}


def logs(req):
    folder = os.path.expanduser(req["dir"])
    out = {}
    for stem in req["stems"]:
        try:
            with open(os.path.join(folder, stem + ".log"), errors="replace") as handle:
                out[stem] = "".join(handle.readlines()[-req["lines"]:])
        except OSError as exc:
            out[stem] = f"(no log: {exc.strerror})\n"
    return {"logs": out}


COMMANDS = {"preflight": preflight, "start": start, "status": status, "stop": stop, "logs": logs}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))))
