"""`python -m harness campaign CONFIG [--dry-run] [--output DIR] [--status-port N]`, `... campaign --example`.

From a config file to a checked submission tree: find-qps, performance (repeat times), accuracy and
TEST06 per scenario, package, check. Prints the plan, then runs what is not already done; a re-run
of the same command resumes (keeps finished steps whose outputs are intact and whose inputs did not
change, re-runs failed and interrupted ones). With --status-port, a live status page of the whole
campaign (every step, the running step's run, time left) and /metrics. Exit 0 every step passed;
1 a step failed, was blocked or INVALID, or the check found problems; 2 bad config or flags;
3 workers not reachable or not started; 130 interrupted (Ctrl-C, SIGTERM, SIGHUP: the running step
stops cleanly first).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import signal
import sys
import time

from rich.console import Console

from harness.artifacts.dataset import DatasetError, load_dataset
from harness.campaign import example
from harness.campaign.config import CampaignConfig, ConfigError, load
from harness.campaign.plan import Decision, Step, build_plan
from harness.campaign.process import StepProcess, alive, stop
from harness.campaign.report import print_plan, print_summary, write_markdown
from harness.campaign.state import FINISHED, CampaignLock, CampaignState, StateError
from harness.campaign.status import CampaignStatus, serve
from harness.campaign.steps import KINDS, Context, fingerprint
from harness.campaign.workers import CampaignWorkers, embedded_default_model, local_model
from harness.run.default_model import ModelError
from harness.run.manifest import CAMPAIGN_ENV, git_revision, package_versions
from harness.run.preflight import PreflightError
from harness.run.status.server import check_status_exposure
from sut.build_info import BuildInfoError
from sut.security import SecurityError, read_token
from sut.worker.launch import LaunchError

EXIT_OK, EXIT_NOT_PASSED, EXIT_INPUT, EXIT_WORKERS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class ArgumentError(ValueError):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ArgumentError(f"{message} (python -m harness campaign --help lists the flags)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m harness campaign", description=__doc__.splitlines()[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("config", nargs="?", help="campaign file (.toml, .yaml or .yml)")
    p.add_argument("--example", action="store_true",
                   help="a miniature smoke campaign on the embedded default model (local CPU workers)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--output", default=None, help="output folder (overrides the file's `output`)")
    p.add_argument("--status-port", type=int, default=None, metavar="N",
                   help="serve the campaign's live status page, /events, /status.json and /metrics on port N "
                        "(0: any free port; the URL is printed)")
    p.add_argument("--status-host", default="127.0.0.1",
                   help="address of the status page (default 127.0.0.1; any other needs workers.auth_token_file; "
                        "with one, the page asks for its token: ?token=...)")
    return p


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class Campaign:
    def __init__(self, config: CampaignConfig, source: str, text: str, console: Console,
                 status_address: tuple[str, int] | None = None):
        self.config, self.source, self.console = config, source, console
        self.status_address = status_address
        self.live: CampaignStatus | None = None
        self.sha = hashlib.sha256(text.encode()).hexdigest()
        self.out = pathlib.Path(config.output).resolve()  # children (find-qps) change directory
        self.steps: list[Step] = build_plan(config)
        self.revision = git_revision()
        self.versions = package_versions()

    def context(self, state: CampaignState) -> Context:
        """The dataset and tokenizer the steps use (the embedded default's when the file names none)."""
        c = self.config
        dataset, tokenizer = c.dataset, c.tokenizer
        if tokenizer is None and c.workers.local and c.workers.local.engine == "hf":
            tokenizer = local_model(c)
        if dataset is None:
            from harness.run.default_model import default_dataset_path
            model = embedded_default_model()
            dataset, tokenizer = str(default_dataset_path(pathlib.Path(model))), tokenizer or model
        records = len(load_dataset(pathlib.Path(dataset), c.run.samples))
        absolute = str(pathlib.Path(tokenizer).resolve()) if tokenizer else None
        return Context(c, self.out, state, str(pathlib.Path(dataset).resolve()), records, absolute)

    def decide(self, ctx: Context) -> list[Decision]:
        decisions: dict[str, Decision] = {}
        for step in self.steps:
            record, kind = ctx.state.step(step.id), KINDS[step.kind]
            status = record.get("status")
            if status not in FINISHED:
                reason = {None: "", "blocked": "was blocked"}.get(status, f"was {status}")
            elif any(decisions[n].action == "run" for n in step.needs):
                reason = "an input is re-run"
            elif (identity := kind.identity(step, ctx)) is None or fingerprint(identity) != record.get("fingerprint"):
                reason = "its settings or inputs changed"
            elif not kind.outputs_ok(step, record, ctx):
                reason = "its outputs are missing or incomplete"
            else:
                decisions[step.id] = Decision(step, "keep", record=record)
                continue
            decisions[step.id] = Decision(step, "run", reason, record)
        return list(decisions.values())

    def settle_stale(self, state: CampaignState) -> None:
        """A step left `running` by a campaign that was killed: its process got SIGINT from the kernel
        when the campaign died; wait for it to stop, then record it as interrupted."""
        for step_id, record in state.data["steps"].items():
            if record.get("status") != "running":
                continue
            pid, started = record.get("pid"), record.get("pid_start")
            if pid and alive(pid, started):
                self.console.print(f"waiting for {step_id} (pid {pid}), left running by a killed campaign, to stop")
                stop(pid, started, first=None)
            state.update(step_id, status="interrupted", pid=None,
                         detail="the campaign stopped during this step (killed); re-run to resume")
            state.note(f"{step_id}: found interrupted (the campaign was killed)")

    def campaign_env(self, step: Step, attempt: int) -> dict[str, str]:
        info = {"step": step.id, "attempt": attempt, "config_file": self.source, "config_sha256": self.sha,
                "config": self.config.model_dump(), "smoke": self.config.smoke, "output": str(self.out),
                "coordinator": {"versions": self.versions, "git_revision": self.revision}}
        return dict(os.environ, **{CAMPAIGN_ENV: json.dumps(info, default=str)})

    def execute(self, step: Step, ctx: Context) -> None:
        state, kind = ctx.state, KINDS[step.kind]
        missing = [n for n in step.needs if state.step(n).get("status") not in FINISHED]
        if missing:
            state.update(step.id, status="blocked", fingerprint=None, run_dir="", duration_s=None,
                         detail=f"blocked: {', '.join(missing)} did not finish")
            self.console.print(f"[magenta]BLOCKED[/] {step.id}: {', '.join(missing)} did not finish")
            return
        identity = kind.identity(step, ctx)
        if identity is None:  # guarded by EDGES (a needed find-qps finished); kept as a plain failure
            state.update(step.id, status="failed", detail="no target_qps known for this scenario", run_dir="")
            return
        kind.prepare(step, ctx)
        attempt = state.step(step.id).get("attempts", 0) + 1
        state.update(step.id, status="running", fingerprint=fingerprint(identity), attempts=attempt, run_dir="",
                     detail="", data={}, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), duration_s=None)
        self.console.print(f"[bold]>[/] {step.id} (attempt {attempt}) ...")
        start = time.monotonic()
        try:
            if kind.subprocess:
                (self.out / "logs").mkdir(exist_ok=True)
                log = self.out / "logs" / f"{step.slug}.attempt-{attempt}.log"
                command = kind.command(step, ctx)  # the status flag stays out of the fingerprint
                if self.live is not None and kind.serves_status:
                    command += ["--status-port", "0"]
                proc = StepProcess(command, log, self.campaign_env(step, attempt))
                state.update(step.id, pid=proc.pid, pid_start=proc.started, log=str(log))
                rc = proc.wait()
                outcome = kind.outcome(step, ctx, rc, _tail(log))
            else:
                outcome = kind.run(step, ctx)
        except KeyboardInterrupt:
            state.update(step.id, status="interrupted", pid=None, duration_s=round(time.monotonic() - start, 1),
                         run_dir=kind.partial_output(step, ctx),
                         detail="interrupted (Ctrl-C or a signal); re-run the same command to resume")
            self.console.print(f"[red]INTERRUPTED[/] {step.id}")
            raise
        duration = round(time.monotonic() - start, 1)
        state.update(step.id, status=outcome.status, detail=outcome.detail, run_dir=outcome.run_dir,
                     data=outcome.data, duration_s=duration, pid=None)
        colour = {"passed": "green", "invalid": "yellow"}.get(outcome.status, "red")
        self.console.print(f"  [{colour}]{outcome.status.upper()}[/] {step.id} in {duration:.1f} s: {outcome.detail}",
                           highlight=False)

    def run(self, dry_run: bool) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        with CampaignLock(self.out):
            state = CampaignState(self.out)
            self.settle_stale(state)
            ctx = self.context(state)
            decisions = self.decide(ctx)
            print_plan(self.console, decisions, self.out)
            if dry_run:
                return EXIT_OK
            server = self.serve_status(state, decisions)
            ended, code = "failed", None  # an error (workers not reachable) still ends the page
            try:
                state.set(config_file=self.source, config_sha256=self.sha, plan=[s.id for s in self.steps])
                state.note("resumed" if state.resumed else "started")
                interrupted = self.run_steps(state, ctx, decisions)
                code = self.finish(state, interrupted)
                ended = "interrupted" if interrupted else "done"
                return code
            finally:
                if server is not None:
                    self.live.finish(ended, code)
                    server.close()

    def run_steps(self, state: CampaignState, ctx: Context, decisions: list[Decision]) -> bool:
        """Workers up, then every step to run, in order; True when interrupted."""
        workers = CampaignWorkers(self.config, self.out / "workers")
        previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
        try:
            if any(d.action == "run" and KINDS[d.step.kind].subprocess for d in decisions):
                self.console.print("workers: checking they are up ..." if self.config.workers.addresses
                                   else "workers: starting local workers ...")
                ctx.addresses = workers.start()
                state.set(workers={"addresses": ctx.addresses, "local_pids": workers.pids()})
                self.console.print(f"workers: {', '.join(ctx.addresses)}")
            for decision in decisions:
                if decision.action == "run":
                    if KINDS[decision.step.kind].subprocess:
                        ctx.addresses = workers.ensure(ctx.addresses)
                    self.execute(decision.step, ctx)
        except KeyboardInterrupt:
            state.note("interrupted")
            return True
        finally:
            workers.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return False

    def serve_status(self, state: CampaignState, decisions: list[Decision]):
        """The live status server, bound before any worker starts (a port in use is a bad flag)."""
        if self.status_address is None:
            return None
        host, port = self.status_address
        token = read_token(self.config.workers.auth_token_file, "workers.auth_token_file") \
            if self.config.workers.auth_token_file else None
        self.live = CampaignStatus(pathlib.Path(self.source).stem, self.out, decisions)
        self.live.run.token = token
        try:
            server = serve(self.live, port, host, token).__enter__()
        except SecurityError as exc:
            raise ArgumentError(str(exc)) from None
        state.listener = self.live.on_state
        self.live.start()
        self.console.print(f"status page: {server.url}", highlight=False)
        return server

    def finish(self, state: CampaignState, interrupted: bool) -> int:
        records = state.data["steps"]
        print_summary(self.console, self.steps, records, self.out)
        notes = ["smoke campaign: short settings, not a valid submission"] if self.config.smoke else []
        write_markdown(self.out / "campaign.md", self.source, self.sha[:16], self.steps, records, self.versions,
                       self.revision, notes)
        self.console.print(f"report: {self.out / 'campaign.md'}; state: {state.path}")
        if interrupted:
            self.console.print("[red]interrupted[/]: run the same command again to resume")
            return EXIT_INTERRUPTED
        return EXIT_OK if all(records.get(s.id, {}).get("status") == "passed" for s in self.steps) else EXIT_NOT_PASSED


def _tail(log: pathlib.Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.lower().startswith(("error", "not accepted", "run failed"))]
    return (errors or lines or [""])[-1][:300]


def main(argv: list[str] | None = None) -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        args = build_parser().parse_args(argv)
        if args.example == bool(args.config):
            raise ArgumentError("give a campaign file or --example (one of them)")
        if args.example:
            config, source, text = example.config(args.output)
        else:
            config, text = load(pathlib.Path(args.config))
            source = args.config
            if args.output:
                config = config.model_copy(update={"output": args.output})
        status = None
        if args.status_port is not None:
            if not 0 <= args.status_port <= 65535:
                raise ArgumentError(f"--status-port {args.status_port}: not a port (0 to 65535)")
            try:
                check_status_exposure(args.status_host, config.workers.auth_token_file)
            except SecurityError:
                raise ArgumentError(f"--status-host {args.status_host}: a status page reachable from other hosts "
                                    f"needs the workers' token (workers.auth_token_file in {source}), or bind it "
                                    f"to 127.0.0.1") from None
            status = (args.status_host, args.status_port)
        campaign = Campaign(config, source, text, console, status)
        code = campaign.run(args.dry_run)
    except (ArgumentError, BuildInfoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ConfigError as exc:
        for line in exc.lines:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INPUT
    except (StateError, DatasetError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (PreflightError, SecurityError, LaunchError) as exc:
        print(f"error: {exc}; no step was run", file=sys.stderr)
        return EXIT_WORKERS
    if args.example and not args.dry_run:
        return example.verdict(console, campaign, code)
    return code
