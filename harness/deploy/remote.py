"""One SSH connection per host (asyncssh) and the agent run through it; every failure is one line
naming the host and what to fix (unreachable, key refused, unknown host key, missing interpreter)."""
from __future__ import annotations

import getpass
import json
import pathlib
import shlex

import asyncssh

from harness.deploy import agent
from harness.deploy.config import HostConfig, resolve_local

CONNECT_TIMEOUT_S = 15.0
AGENT_SOURCE = pathlib.Path(agent.__file__).read_text()
NO_PYTHON, NO_WORKDIR = 97, 98


class HostError(RuntimeError):
    """One line: `HOST: what went wrong`."""


def shell_path(path: str) -> str:
    """Quoted for the remote shell, keeping a leading ~ as the remote user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class Host:
    def __init__(self, config: HostConfig, cluster_file: str):
        self.config = config
        self.cluster_file = cluster_file
        self.conn: asyncssh.SSHClientConnection | None = None

    @property
    def label(self) -> str:
        return self.config.label

    def _fail(self, text: str) -> HostError:
        return HostError(f"{self.label}: {text}")

    async def connect(self) -> "Host":
        c = self.config
        user = c.user or getpass.getuser()
        key = str(resolve_local(self.cluster_file, c.key_file)) if c.key_file else None
        known = str(resolve_local(self.cluster_file, c.known_hosts)) if c.known_hosts else ()
        where = f"{c.address}:{c.port}"
        try:
            self.conn = await asyncssh.connect(c.address, port=c.port, username=user, known_hosts=known,
                                               client_keys=[key] if key else (), agent_path=None if key else (),
                                               connect_timeout=CONNECT_TIMEOUT_S, config=None)
        except asyncssh.PermissionDenied:
            raise self._fail(f"SSH to {user}@{where} refused the key {key or '(default keys)'} (wrong key_file or "
                             f"user?)") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._fail(f"host key of {where} not trusted ({exc.reason}); add it to "
                             f"{c.known_hosts or '~/.ssh/known_hosts'} "
                             f"(ssh-keyscan -p {c.port} {c.address} >> that file)") from None
        except (OSError, TimeoutError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise self._fail(f"cannot reach {where} over SSH ({reason})") from None
        except asyncssh.Error as exc:
            raise self._fail(f"SSH to {where} failed ({exc.reason})") from None
        return self

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()
            self.conn = None

    async def agent(self, command: str, request: dict, timeout: float = 60.0) -> dict:
        c = self.config
        python = shell_path(c.python)
        cd = (f"cd {shell_path(c.workdir)} 2>/dev/null || {{ echo 'workdir {c.workdir} does not exist' >&2; "
              f"exit {NO_WORKDIR}; }}; ") if c.workdir else ""
        env = ("env " + " ".join(shlex.quote(f"{k}={v}") for k, v in c.env.items()) + " ") if c.env else ""
        line = (f"{cd}command -v {python} >/dev/null 2>&1 || {{ echo 'python {c.python} not found (missing venv?)' "
                f">&2; exit {NO_PYTHON}; }}; {env}{python} -c {shlex.quote(AGENT_SOURCE)} {command} "
                f"{shlex.quote(json.dumps(request))}")
        try:
            result = await self.conn.run(line, check=False, timeout=timeout)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._fail(f"{command} over SSH failed ({getattr(exc, 'reason', None) or exc})") from None
        stderr = str(result.stderr or "").strip().splitlines()
        if result.exit_status != 0:
            raise self._fail(stderr[-1] if stderr else f"{command} exited with {result.exit_status}")
        try:
            return json.loads(str(result.stdout).strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise self._fail(f"{command}: unexpected answer {str(result.stdout)[:200]!r}") from None

    async def upload(self, local: pathlib.Path, remote: str) -> None:
        """A file (the preset, a wheel) into the cluster's folder on the host, through the SSH
        channel itself (no SFTP subsystem needed), readable by the SSH user only."""
        folder = remote.rsplit("/", 1)[0]
        line = (f"umask 077 && mkdir -p {shell_path(folder)} && cat > {shell_path(remote)}.part && "
                f"mv {shell_path(remote)}.part {shell_path(remote)}")
        try:
            result = await self.conn.run(line, input=local.read_bytes(), encoding=None, check=False, timeout=600)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            raise self._fail(f"cannot copy {local} to {remote} ({getattr(exc, 'reason', None) or exc})") from None
        if result.exit_status != 0:
            lines = (result.stderr or b"").decode(errors="replace").strip().splitlines()
            raise self._fail(f"cannot copy {local} to {remote}: {lines[-1] if lines else result.exit_status}")
