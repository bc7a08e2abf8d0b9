"""`python -m harness cluster {up,status,logs,down,install} FILE`: workers on GPU hosts over SSH;
`cluster discover` (Kubernetes: the workers behind a headless Service) and `cluster render-k8s`.

Exit codes: 0 done (every worker SERVING for up/status); 2 a bad flag or cluster file (one line per
problem); 3 a host failed or a worker is not SERVING (one line per host).
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.table import Table

from harness.deploy.bringup import SERVING, Cluster, Outcome
from harness.deploy.config import load_cluster
from harness.deploy.errors import ClusterFileError
from harness.deploy.plan import link_security
from harness.deploy.remote import HostError
from sut.security import SecurityError

EXIT_OK, EXIT_INPUT, EXIT_CLUSTER = 0, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(EXIT_INPUT, f"error: {message} (python -m harness cluster --help lists the commands)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    up = sub.add_parser("up", help="start one worker per GPU (or tensor-parallel group) on every host")
    up.add_argument("--partial", action="store_true", help="keep the hosts that came up when others fail")
    up.add_argument("--timeout", type=float, default=None, help="seconds to wait for SERVING (default: the "
                                                                    "file's ready_timeout_s)")
    sub.add_parser("status", help="each worker's process and health")
    install = sub.add_parser("install", help="build a wheel of this checkout and install it in every host's venv")
    install.add_argument("--wheel", default=None, metavar="FILE", help="install this wheel instead")
    down = sub.add_parser("down", help="stop exactly the processes `up` started (pid files on each host)")
    down.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    logs = sub.add_parser("logs", help="the last lines of workers' logs")
    logs.add_argument("selector", metavar="HOST[:GPU]")
    logs.add_argument("--lines", type=int, default=50)
    for command in (up, sub.choices["status"], install, down, logs):
        command.add_argument("file", metavar="FILE", help="cluster file (.toml, .yaml)")
    discover = sub.add_parser("discover", help="Kubernetes: print the workers behind a headless Service")
    from harness.deploy.discovery import add_arguments
    add_arguments(discover)
    render = sub.add_parser("render-k8s", help="write the Kubernetes manifests for N workers")
    from harness.deploy.kubernetes import add_arguments as add_render_arguments
    add_render_arguments(render)
    return parser


def print_table(outcome: Outcome, config, console: Console) -> None:
    table = Table(title=f"cluster {config.name}")
    for column in ("host", "GPU", "port", "engine", "model", "pid", "state"):
        table.add_column(column)
    for worker in outcome.workers:
        plan = worker.plan
        style = "green" if worker.state == SERVING else "red"
        table.add_row(plan.host.label, plan.gpu_label, str(plan.port), config.engine, config.model,
                      str(worker.pid or "-"), f"[{style}]{worker.state}[/{style}]")
    console.print(table)
    for worker in outcome.workers:
        if worker.note and worker.state != SERVING:
            console.print(f"  {worker.plan.host.label} gpu{worker.plan.gpu_label}: {worker.note}", markup=False,
                          highlight=False)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    if args.command == "discover":
        from harness.deploy.discovery import main as discover
        return discover(args)
    if args.command == "render-k8s":
        from harness.deploy.kubernetes import main as render
        return render(args)
    try:
        config = load_cluster(args.file)
        cluster = Cluster(config, args.file, link_security(config, args.file))
    except ClusterFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    except SecurityError as exc:
        print(f"error: {args.file}: security: {exc}", file=sys.stderr)
        return EXIT_INPUT
    console = Console(soft_wrap=True)
    if args.command == "install":
        from harness.deploy.install import run as install
        return install(cluster, args.wheel)
    if args.command == "up":
        try:
            outcome = asyncio.run(cluster.up(args.partial, args.timeout))
        except KeyboardInterrupt:
            print("interrupted: stopping what was started", file=sys.stderr)
            for line in asyncio.run(cluster.down()):
                print(line, file=sys.stderr)
            return 130
        report(outcome, config, console)
        return EXIT_OK if not outcome.errors and any(w.state == SERVING for w in outcome.workers) else EXIT_CLUSTER
    if args.command == "status":
        outcome = asyncio.run(cluster.status())
        report(outcome, config, console)
        return EXIT_OK if outcome.ok else EXIT_CLUSTER
    if args.command == "down":
        lines = asyncio.run(cluster.down(grace_s=args.grace))
        for line in lines:
            print(line, file=sys.stderr if line.startswith("error:") else sys.stdout)
        return EXIT_CLUSTER if any(line.startswith("error:") for line in lines) else EXIT_OK
    try:
        for name, text in asyncio.run(cluster.logs(args.selector, args.lines)).items():
            print(f"==> {name} <==\n{text}", end="" if text.endswith("\n") else "\n")
    except ValueError as exc:  # a HOST[:GPU] of no worker
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except HostError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    return EXIT_OK


def report(outcome: Outcome, config, console: Console) -> None:
    print_table(outcome, config, console)
    for line in outcome.stopped:
        print(f"cleaned up: {line}", file=sys.stderr)
    for error in outcome.errors:
        print(f"error: {error}", file=sys.stderr)
