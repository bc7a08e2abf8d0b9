"""A real PostgreSQL server for tests: Debian's postgresql package, a fresh cluster in a temporary folder,
TCP on 127.0.0.1 only with a password (scram), stopped and removed afterwards. PostgreSQL refuses to
run as root, so as root it runs as the package's `postgres` user (runuser)."""
from __future__ import annotations

import glob
import os
import pathlib
import pwd
import secrets
import shutil
import subprocess
import tempfile

from helpers import free_port


class CannotStart(RuntimeError):
    pass


def _binaries() -> pathlib.Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return pathlib.Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return pathlib.Path(initdb).resolve().parent
    raise CannotStart("PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)")


class PostgresServer:
    user = "bench"

    def __init__(self):
        self.bin = _binaries()
        self.password = secrets.token_hex(12)
        self.port = free_port()
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise CannotStart("running as root and there is no `postgres` user to run the server as") from None
            if not shutil.which("runuser"):
                raise CannotStart("running as root and there is no runuser to start the server as postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str, timeout: float = 60) -> None:
        result = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise CannotStart(f"{pathlib.Path(command[0]).name} failed: {tail}")

    def start(self) -> "PostgresServer":
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.as_user:
            shutil.chown(pwfile, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
        pwfile.unlink()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-t", "60", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start", timeout=90)
        return self

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
