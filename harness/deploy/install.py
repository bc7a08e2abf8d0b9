"""`python -m harness cluster install FILE [--wheel W]`: the same harness build in every host's venv.

Without `--wheel`, builds one from this checkout (`pip wheel --no-deps`), stamped with the
checkout's commit (`sut.build_info`: what the installed workers report as `identity.revision`),
copies it into the cluster's folder on each host over SFTP and installs it with the host's
interpreter (`pip install --no-deps --force-reinstall`: the venv's own torch/vLLM stay as they
are). Hosts install at once; each failure is one line naming the host.
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

from harness.deploy.bringup import Cluster
from harness.deploy.remote import Host, HostError, shell_path
from sut.build_info import BuildInfoError, stamp_build, wheel_revision

CHECKOUT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = ("setup.py", "README.md", "harness", "sut")  # what setup.py packages


class BuildError(RuntimeError):
    pass


def build_wheel(out: pathlib.Path) -> pathlib.Path:
    """From a fresh copy of the sources: a checkout's build/ may hold modules deleted since."""
    if not (CHECKOUT / "setup.py").is_file():
        raise BuildError(f"{CHECKOUT} is not a checkout of the harness (no setup.py): give --wheel FILE")
    source = out / "source"
    for name in SOURCES:
        if (CHECKOUT / name).is_dir():
            shutil.copytree(CHECKOUT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy(CHECKOUT / name, source / name)
    try:
        stamp_build(CHECKOUT, source / "sut")  # the copy has no .git: setup.py keeps this stamp
    except BuildInfoError as exc:
        raise BuildError(str(exc)) from None
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(out), str(source)], capture_output=True, text=True)
    wheels = sorted(out.glob("*.whl"))
    if built.returncode != 0 or not wheels:
        lines = (built.stderr or built.stdout).strip().splitlines()
        raise BuildError(f"pip wheel {CHECKOUT} failed: {lines[-1] if lines else built.returncode}")
    return wheels[0]


async def install(cluster: Cluster, wheel: pathlib.Path, revision: str | None) -> dict[str, str | HostError]:
    remote = f"{cluster.folder}/wheels/{wheel.name}"
    stamped = f"revision {revision}" if revision else "no revision stamp: its workers report package:<version>"

    async def one(host: Host, plans) -> str:
        await host.upload(wheel, remote)
        c = host.config
        line = f"{shell_path(c.python)} -m pip install -q --no-deps --force-reinstall {shell_path(remote)}"
        result = await host.conn.run(line, check=False, timeout=600)
        if result.exit_status != 0:
            lines = str(result.stderr or result.stdout).strip().splitlines()
            raise HostError(f"{host.label}: pip install failed: {lines[-1] if lines else result.exit_status}")
        return f"{host.label}: installed {wheel.name} ({stamped}) into {c.python}"
    return await cluster._each_host(one)


def wheel_for(path: str | None, scratch: str) -> pathlib.Path:
    if path:
        wheel = pathlib.Path(path)
        if wheel.suffix != ".whl" or not wheel.is_file():
            raise BuildError(f"--wheel {path}: not a wheel file")
        return wheel
    return build_wheel(pathlib.Path(scratch))


def run(cluster: Cluster, wheel_path: str | None) -> int:
    import asyncio
    with tempfile.TemporaryDirectory(prefix="harness-wheel-") as scratch:
        try:
            wheel = wheel_for(wheel_path, scratch)
            revision = wheel_revision(wheel)
        except (BuildError, BuildInfoError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results = asyncio.run(install(cluster, wheel, revision))
    for result in results.values():
        print(f"error: {result}" if isinstance(result, HostError) else result,
              file=sys.stderr if isinstance(result, HostError) else sys.stdout)
    return 3 if any(isinstance(r, HostError) for r in results.values()) else 0
