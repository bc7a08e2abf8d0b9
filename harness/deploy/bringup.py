"""`cluster up`, `status`, `down`, `logs` over SSH, all hosts at once.

`up` checks every host first (SSH, interpreter, `sut` importable, GPU indices, ports free, the
workers' TLS/token files, nothing of this cluster still running) and starts nothing anywhere when a
host fails, unless `partial`; then starts the workers detached, each with a pid file on its host,
and waits until each reports SERVING on the standard gRPC health check. A host whose worker dies or
never serves fails with the worker's last log line, and what was started is stopped again (all of
it without `partial`, that host's with it).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.deploy.config import ClusterConfig, resolve_local
from harness.deploy.plan import GPU_ENGINES, PRESET_NAME, WorkerPlan, plan_cluster, remote_dir
from harness.deploy.remote import Host, HostError
from sut.security import LinkSecurity
from sut.wire import CHANNEL_OPTIONS

SERVING, STARTING, DEAD, STOPPED, SILENT, UNKNOWN = \
    "SERVING", "STARTING", "DEAD", "STOPPED", "NOT ANSWERING", "HOST UNREACHABLE"
POLL_S = 0.5


@dataclass
class WorkerState:
    plan: WorkerPlan
    state: str = STOPPED
    pid: int | None = None
    note: str = ""


@dataclass
class Outcome:
    workers: list[WorkerState]
    errors: list[str] = field(default_factory=list)  # one line each, `HOST: ...`
    stopped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(w.state == SERVING for w in self.workers)


def by_host(items: list, plan_of) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for item in items:
        grouped.setdefault(plan_of(item).host.label, []).append(item)
    return grouped


class Cluster:
    def __init__(self, config: ClusterConfig, cluster_file: str, security: LinkSecurity):
        self.config = config
        self.file = cluster_file
        self.security = security
        self.plans = plan_cluster(config)
        self.folder = remote_dir(config)
        self.cancel = threading.Event()  # set from another thread: `up` stops waiting and cleans up

    def _by_host(self, plans: list[WorkerPlan] | None = None) -> dict[str, list[WorkerPlan]]:
        return by_host(plans if plans is not None else self.plans, lambda plan: plan)

    async def _each_host(self, job, labels=None) -> dict[str, object]:
        """job(host, plans) on every host at once, each over its own connection; a HostError is
        that host's result."""
        async def one(label: str, plans: list[WorkerPlan]):
            host = Host(plans[0].host, self.file)
            try:
                await host.connect()
                return await job(host, plans)
            except HostError as exc:
                return exc
            finally:
                await host.close()
        groups = {k: v for k, v in self._by_host().items() if labels is None or k in labels}
        results = await asyncio.gather(*(one(k, v) for k, v in groups.items()))
        return dict(zip(groups, results))

    # ---- checks before anything starts
    def _preflight_problems(self, host: Host, plans: list[WorkerPlan], found: dict) -> list[str]:
        problems = []
        if not found["sut"]:
            problems.append(f"{found['python']} cannot import sut.worker (install the harness in that venv: "
                            f"pip install mlperf-llm-harness, or python -m harness cluster install)")
        if found["running"]:
            problems.append(f"workers of cluster {self.config.name!r} still running ({', '.join(found['running'])}); "
                            f"run python -m harness cluster down first")
        if found["in_use"]:
            problems.append(f"port{'s' if len(found['in_use']) > 1 else ''} "
                            f"{', '.join(map(str, found['in_use']))} in use on {host.config.address}")
        if found["missing_files"]:
            problems.append(f"cannot read {', '.join(found['missing_files'])} on the host (security.worker_*)")
        wanted = sorted({g for plan in plans for g in plan.gpus})
        if found["gpus"] is not None:
            absent = [g for g in wanted if g not in found["gpus"]]
            if absent:
                problems.append(f"GPU {', '.join(map(str, absent))} does not exist (the host has "
                                f"{', '.join(map(str, found['gpus'])) or 'no GPUs'})")
        elif self.config.engine in GPU_ENGINES:
            problems.append(f"cannot list the host's GPUs for engine {self.config.engine} ({found['gpu_error']})")
        return problems

    async def _preflight(self, host: Host, plans: list[WorkerPlan]):
        found = await host.agent("preflight", {"dir": self.folder, "prefix": host.label + "-",
                                               "ports": [[self.config.bind, p.port] for p in plans],
                                               "files": self.config.security.host_files()})
        problems = self._preflight_problems(host, plans, found)
        if problems:
            raise HostError(f"{host.label}: " + "; ".join(problems))
        return True

    # ---- up
    async def up(self, partial: bool = False, timeout_s: float | None = None) -> Outcome:
        states = [WorkerState(p) for p in self.plans]
        outcome = Outcome(states)
        checked = await self._each_host(self._preflight)
        failed = {k: v for k, v in checked.items() if isinstance(v, HostError)}
        outcome.errors += [str(e) for e in failed.values()]
        if failed and not partial:
            return outcome
        good = [label for label in checked if label not in failed]
        started = await self._each_host(self._start, good)
        for label, result in started.items():
            if isinstance(result, HostError):
                outcome.errors.append(str(result))
                failed[label] = result
            else:
                for state in states:
                    if state.plan.host.label == label:
                        state.pid, state.state = result.get(state.plan.stem), STARTING
        deadline = time.monotonic() + (timeout_s or self.config.ready_timeout_s)
        running = [s for s in states if s.state == STARTING]
        try:
            await self._wait_serving(running, deadline)
        except BaseException:  # interrupted (cancelled, Ctrl-C) while waiting: undo the start first
            await asyncio.shield(self.down(list(started)))
            raise
        for label, workers in by_host(running, lambda state: state.plan).items():
            bad = [w for w in workers if w.state != SERVING]
            if bad:
                failed[label] = HostError(label)
                outcome.errors.append(f"{label}: " + "; ".join(f"worker gpu{w.plan.gpu_label} port {w.plan.port} "
                                                                  f"{w.state.lower()}: {w.note}" for w in bad))
        launched = list(started)  # a start that failed half-way may have left pid files too
        if failed and launched:  # only hosts where this call started workers: never an earlier cluster's
            victims = [label for label in launched if label in failed or not partial]
            if victims:
                outcome.stopped = await self.down(victims)
            for state in states:
                if state.plan.host.label in victims and state.state != DEAD:
                    state.state = STOPPED
        return outcome

    async def _start(self, host: Host, plans: list[WorkerPlan]) -> dict[str, int]:
        if self.config.preset:
            await host.upload(resolve_local(self.file, self.config.preset), f"{self.folder}/{PRESET_NAME}")
        workers = [{"stem": p.stem, "argv": p.spec.command(), "env": p.spec.env} for p in plans]
        answer = await host.agent("start", {"dir": self.folder, "workers": workers})
        return {w["stem"]: w["pid"] for w in answer["started"]}

    async def _wait_serving(self, states: list[WorkerState], deadline: float) -> None:
        """Health checks from here, and the processes' liveness over SSH (a dead worker fails at
        once with its last log line; a host lost meanwhile fails its workers with its one line)."""
        hosts: dict[str, Host] = {}
        try:
            pending = list(states)
            while pending and time.monotonic() < deadline and not self.cancel.is_set():
                answers = await asyncio.gather(*(health(s.plan.address, self.security) for s in pending))
                for state, answer in zip(pending, answers):
                    state.state, state.note = (SERVING, "") if answer == SERVING else (STARTING, answer)
                pending = [s for s in pending if s.state != SERVING]
                for label, ws in by_host(pending, lambda state: state.plan).items():
                    try:
                        if label not in hosts:
                            hosts[label] = await Host(ws[0].plan.host, self.file).connect()
                        await self._mark_dead(hosts[label], ws)
                    except HostError as exc:
                        for state in ws:
                            state.state, state.note = SILENT, str(exc)
                pending = [s for s in pending if s.state == STARTING]
                if pending:
                    await asyncio.sleep(POLL_S)
            for state in pending:
                state.state, state.note = SILENT, ("cancelled" if self.cancel.is_set() else
                                                   f"not SERVING within the timeout ({state.note})")
        finally:
            for host in hosts.values():
                await host.close()

    async def _mark_dead(self, host: Host, states: list[WorkerState]) -> None:
        alive = (await host.agent("status", {"dir": self.folder, "prefix": host.label + "-"}))["workers"]
        for state in states:
            if not alive.get(state.plan.stem, {}).get("alive"):
                state.state = DEAD
                state.note = await self._last_line(host, state.plan)

    async def _last_line(self, host: Host, plan: WorkerPlan) -> str:
        text = (await host.agent("logs", {"dir": self.folder, "stems": [plan.stem], "lines": 3}))["logs"][plan.stem]
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return f"exited; log {self.folder}/{plan.stem}.log: {lines[-1] if lines else '(empty)'}"

    # ---- status, down, logs
    async def status(self) -> Outcome:
        states = [WorkerState(p) for p in self.plans]
        outcome = Outcome(states)
        found = await self._each_host(
            lambda host, plans: host.agent("status", {"dir": self.folder, "prefix": host.label + "-"}))
        for state in states:
            result = found[state.plan.host.label]
            if isinstance(result, HostError):
                state.state = UNKNOWN
                continue
            entry = result["workers"].get(state.plan.stem)
            if entry is None:
                continue
            state.pid = entry["pid"]
            state.state = STARTING if entry["alive"] else DEAD
        outcome.errors += list(dict.fromkeys(str(r) for r in found.values() if isinstance(r, HostError)))
        alive = [s for s in states if s.state == STARTING]
        answers = await asyncio.gather(*(health(s.plan.address, self.security) for s in alive))
        for state, answer in zip(alive, answers):
            state.state, state.note = (SERVING, "") if answer == SERVING else (SILENT, answer)
        return outcome

    async def down(self, labels: list[str] | None = None, grace_s: float = 5.0) -> list[str]:
        """Stops what the pid files on each host name; returns one line per host (errors included)."""
        async def stop(host: Host, plans):
            return (await host.agent("stop", {"dir": self.folder, "prefix": host.label + "-", "grace_s": grace_s},
                                     timeout=grace_s + 30))["stopped"]
        lines = []
        for label, result in (await self._each_host(stop, labels)).items():
            if isinstance(result, HostError):
                lines.append(f"error: {result}")
            else:
                done = [f"{w['stem']} (pid {w['pid']}{'' if w['was_alive'] else ', had exited'})" for w in result]
                lines.append(f"{label}: stopped {', '.join(done) if done else 'nothing (no pid files)'}")
        return lines

    async def logs(self, selector: str, lines: int) -> dict[str, str]:
        chosen = [p for p in self.plans if p.matches(selector)]
        if not chosen:
            raise ValueError(f"{selector}: no worker of cluster {self.config.name!r} matches HOST[:GPU] "
                            f"(hosts: {', '.join(self._by_host())})")
        labels = list(self._by_host(chosen))
        found = await self._each_host(lambda host, plans: host.agent(
            "logs", {"dir": self.folder, "stems": [p.stem for p in plans if p in chosen], "lines": lines}), labels)
        out = {}
        for label, result in found.items():
            if isinstance(result, HostError):
                raise result
            for stem, text in result["logs"].items():
                out[f"{label} {stem}"] = text
        return out


async def health(address: str, security: LinkSecurity, timeout_s: float = 2.0) -> str:
    """SERVING, or what the standard health check said instead."""
    options = CHANNEL_OPTIONS + security.channel_options()
    credentials = security.channel_credentials()
    channel = (grpc.aio.secure_channel(address, credentials, options=options) if credentials
               else grpc.aio.insecure_channel(address, options=options))
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
