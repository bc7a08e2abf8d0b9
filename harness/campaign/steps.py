"""What each kind of step runs and how its result is read: a registry (KINDS) of small classes.

Runs and find-qps are child processes of the existing commands (`python -m harness run`, `find-qps`):
LoadGen allows one test per process, and `run` exits the process on a dead cluster and owns its
signal handling, so a run in-process could take the campaign down with it. Package and check are
plain library calls (`package.package`, `check.Checker`): file work, no LoadGen, seconds.
A step's fingerprint is a hash of what decides its result (its command with the worker addresses
masked, its user.conf, its inputs' run directories), so a resumed campaign keeps a step only when
nothing it depends on changed.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import sys
from dataclasses import dataclass, field

from harness.benchmarks.definitions import BENCHMARKS
from harness.benchmarks.scenarios import SCENARIOS
from harness.campaign.config import CampaignConfig
from harness.campaign.plan import Step
from harness.campaign.state import FINISHED, CampaignState

WORKERS_MASK = "<workers>"


@dataclass
class Outcome:
    status: str                 # passed | invalid | failed
    detail: str = ""
    run_dir: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class Context:
    config: CampaignConfig
    out: pathlib.Path
    state: CampaignState
    dataset: str
    records: int                 # records of the dataset the runs use
    tokenizer: str | None
    addresses: list[str] | None = None  # once the workers are up

    def qps(self, scenario: str) -> float | None:
        if scenario in self.config.loadgen.target_qps:
            return self.config.loadgen.target_qps[scenario]
        record = self.state.step(f"find-qps/{scenario}")
        return record.get("data", {}).get("qps") if record.get("status") in FINISHED else None

    def security_flags(self) -> list[str]:
        w = self.config.workers
        flags = []
        for flag, value in (("--auth-token-file", w.auth_token_file), ("--tls-ca", w.tls_ca),
                            ("--tls-client-cert", w.tls_client_cert), ("--tls-client-key", w.tls_client_key),
                            ("--tls-server-name", w.tls_server_name)):
            if value:
                flags += [flag, value]
        return flags

    def workers_arg(self, masked: bool) -> str:
        """The --workers value; masked in fingerprints (local workers get new ports on every start)."""
        return WORKERS_MASK if masked or not self.addresses else ",".join(self.addresses)

    def move_aside(self, path: pathlib.Path, slug: str) -> None:
        """An earlier attempt's output goes to OUT/attempts/<slug>/attempt-N, kept for inspection."""
        if not path.exists():
            return
        parent = self.out / "attempts" / slug
        parent.mkdir(parents=True, exist_ok=True)
        n = 1 + sum(1 for _ in parent.iterdir())
        path.rename(parent / f"attempt-{n}")


def fingerprint(identity) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


class RunStep:
    """performance, accuracy, TEST06: one `python -m harness run` into OUT/runs/<slug>/."""
    subprocess = True
    serves_status = True  # `harness run --status-port`: a campaign's status page follows its run
    uses_qps = True  # the run follows the scenario's schedule (AccuracyOnly runs do not)

    def folder(self, step: Step, ctx: Context) -> pathlib.Path:
        return ctx.out / "runs" / step.slug

    def user_conf(self, step: Step, ctx: Context) -> str | None:
        c = ctx.config
        model = SCENARIOS[step.scenario].default_model_name
        section = SCENARIOS[step.scenario].loadgen_scenario
        lines = [f"# written by python -m harness campaign for step {step.id}"]
        if c.loadgen.user_conf:
            lines += [pathlib.Path(c.loadgen.user_conf).read_text().rstrip(), "# the campaign's settings:"]
        benchmark = next(b for b in BENCHMARKS if b.folder == c.benchmark)
        count = c.loadgen.performance_sample_count or (ctx.records if ctx.records < benchmark.dataset_size else None)
        if count:
            lines.append(f"{model}.*.performance_sample_count_override = {count}")
        for key, value in (("min_duration", c.loadgen.min_duration_ms), ("min_query_count", c.loadgen.min_query_count)):
            if value is not None:
                lines.append(f"{model}.{section}.{key} = {value}")
        if step.scenario == "Offline" and c.loadgen.offline_target_qps:
            lines.append(f"{model}.Offline.target_qps = {c.loadgen.offline_target_qps}")
        if self.uses_qps and SCENARIOS[step.scenario].server_like and step.scenario != "SingleStream":
            qps = ctx.qps(step.scenario)
            if qps is None:
                return None
            lines.append(f"{model}.Server.target_qps = {qps}")
        return "\n".join(lines) + "\n"

    def command(self, step: Step, ctx: Context, masked: bool = False) -> list[str]:
        c = ctx.config
        conf = ctx.out / "confs" / f"{step.slug}.conf"
        args = ["--quiet", "--scenario", step.scenario, "--workers", ctx.workers_arg(masked), "--dataset", ctx.dataset,
                "--user-conf", str(conf), "--output", str(self.folder(step, ctx))]
        for flag, value in (("--total-sample-count", c.run.samples), ("--max-new-tokens", c.run.max_new_tokens),
                            ("--min-new-tokens", c.run.min_new_tokens)):
            if value is not None:
                args += [flag, str(value)]
        return _harness("run", *args, *self.kind_args(ctx), *ctx.security_flags(), *c.run.args)

    def kind_args(self, ctx: Context) -> list[str]:
        return []

    def identity(self, step: Step, ctx: Context) -> dict | None:
        conf = self.user_conf(step, ctx)
        return None if conf is None else {"command": self.command(step, ctx, True)[1:], "user_conf": conf}

    def prepare(self, step: Step, ctx: Context) -> None:
        ctx.move_aside(self.folder(step, ctx), step.slug)
        (ctx.out / "confs").mkdir(exist_ok=True)
        (ctx.out / "confs" / f"{step.slug}.conf").write_text(self.user_conf(step, ctx))

    def outputs_ok(self, step: Step, record: dict, ctx: Context) -> bool:
        return _manifest(pathlib.Path(record.get("run_dir", ""))).get("status") == "done"

    def partial_output(self, step: Step, ctx: Context) -> str:
        folder = self.folder(step, ctx)
        runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        return str(runs[-1]) if runs else ""

    def outcome(self, step: Step, ctx: Context, rc: int, log_tail: str) -> Outcome:
        folder = self.folder(step, ctx)
        runs = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        if not runs:
            return Outcome("failed", f"exit {rc}, no run directory: {log_tail}")
        run_dir = runs[-1]
        m = _manifest(run_dir)
        if m.get("status") != "done":
            return Outcome("failed", f"exit {rc}, run {m.get('status', 'unreadable')}: {m.get('failure') or log_tail}",
                           str(run_dir))
        detail, data = self.result(m, run_dir)
        if m.get("accepted") and self.passed(m):
            return Outcome("passed", detail, str(run_dir), data)
        reasons = list(dict.fromkeys(m.get("invalid_reasons") or [])) or [log_tail]
        return Outcome("invalid", f"{detail}; {'; '.join(reasons)}" if not m.get("accepted") else detail,
                       str(run_dir), data)

    def result(self, m: dict, run_dir: pathlib.Path) -> tuple[str, dict]:
        return f"LoadGen {m.get('validity')}, {m.get('num_errors')} error(s)", {"validity": m.get("validity")}

    def passed(self, m: dict) -> bool:
        return True


class Performance(RunStep):
    pass


class Accuracy(RunStep):
    uses_qps = False
    def kind_args(self, ctx: Context) -> list[str]:
        return ["--mode", "AccuracyOnly"] + (["--tokenizer", ctx.tokenizer] if ctx.tokenizer else [])

    def result(self, m: dict, run_dir: pathlib.Path) -> tuple[str, dict]:
        scores = m.get("accuracy") or {}
        shown = ", ".join(f"{k} {v}" for k, v in scores.items() if k in ("rouge1", "rouge2", "rougeL", "gen_num"))
        verdict = "targets met" if m.get("accuracy_pass") else "targets NOT met"
        return f"{shown or 'not scored'}: {verdict}", {"accuracy": scores, "accuracy_pass": m.get("accuracy_pass")}

    def passed(self, m: dict) -> bool:
        return bool(m.get("accuracy_pass"))


class Test06(RunStep):
    def kind_args(self, ctx: Context) -> list[str]:
        eos = ctx.config.eos_ids
        return (["--audit", "TEST06"] + (["--eos-ids", ",".join(map(str, eos))] if eos else [])
                + (["--tokenizer", ctx.tokenizer] if ctx.tokenizer else []))

    def result(self, m: dict, run_dir: pathlib.Path) -> tuple[str, dict]:
        text = m.get("test06") or ""
        last = text.strip().splitlines()[-1] if text.strip() else "no TEST06 verdict"
        return last, {"test06": text}


class FindQps:
    """`python -m harness find-qps` into OUT/find-qps/<scenario>; interrupted, it resumes from its own state."""
    subprocess = True
    serves_status = False

    def folder(self, step: Step, ctx: Context) -> pathlib.Path:
        return ctx.out / "find-qps" / step.scenario

    def command(self, step: Step, ctx: Context, masked: bool = False) -> list[str]:
        c, f = ctx.config, ctx.config.find_qps
        args = ["--quiet", "--scenario", step.scenario, "--workers", ctx.workers_arg(masked), "--dataset", ctx.dataset,
                "--output", str(self.folder(step, ctx)), "--probe-duration-ms", str(f.probe_duration_ms),
                "--confirm-duration-ms", str(f.confirm_duration_ms), "--max-probes", str(f.max_probes),
                "--budget-s", str(f.budget_s), "--offline-samples", str(min(f.offline_samples, ctx.records))]
        if f.offline_qps:
            args += ["--offline-qps", str(f.offline_qps)]
        if f.no_confirm:
            args.append("--no-confirm")
        if c.run.samples:
            args += ["--samples", str(c.run.samples)]
        passed = ctx.security_flags() + c.run.args + [
            a for flag, v in (("--max-new-tokens", c.run.max_new_tokens), ("--min-new-tokens", c.run.min_new_tokens))
            if v is not None for a in (flag, str(v))]
        return _harness("find-qps", *args, *(f"--harness-arg={a}" for a in passed), *f.args)

    def identity(self, step: Step, ctx: Context) -> dict:
        return {"command": self.command(step, ctx, True)[1:]}

    def prepare(self, step: Step, ctx: Context) -> None:
        record = ctx.state.step(step.id)
        if record.get("fingerprint") not in (None, fingerprint(self.identity(step, ctx))) or \
                record.get("status") in FINISHED:
            ctx.move_aside(self.folder(step, ctx), step.slug)  # other settings: find-qps would refuse its state

    def outputs_ok(self, step: Step, record: dict, ctx: Context) -> bool:
        return bool(record.get("data", {}).get("qps")) and (self.folder(step, ctx) / "find-qps.json").is_file()

    def partial_output(self, step: Step, ctx: Context) -> str:
        return str(self.folder(step, ctx))

    def outcome(self, step: Step, ctx: Context, rc: int, log_tail: str) -> Outcome:
        folder = self.folder(step, ctx)
        try:
            result = json.loads((folder / "find-qps.json").read_text()).get("result") or {}
        except (OSError, ValueError):
            result = {}
        qps = result.get("found_qps")
        if not qps:
            return Outcome("failed", f"exit {rc}: no target_qps found ({result.get('stopped') or log_tail})",
                           str(folder))
        confirm = result.get("confirm")
        said = f"confirming run {confirm.get('validity')}" if confirm else "no confirming run (find_qps.no_confirm)"
        status = "passed" if rc == 0 else "invalid"
        return Outcome(status, f"target_qps {qps}; {said}", str(folder), {"qps": qps})


class Package:
    """harness.submission.package into OUT/submission (built beside it, then renamed: all or nothing)."""
    subprocess = False
    serves_status = False

    def inputs(self, step: Step, ctx: Context) -> list[str]:
        return [ctx.state.step(d).get("run_dir", "") for d in step.needs]

    def system_text(self, ctx: Context) -> str:
        system = ctx.config.system
        return pathlib.Path(system).read_text() if isinstance(system, str) else json.dumps(system, indent=2)

    def identity(self, step: Step, ctx: Context) -> dict:
        c = ctx.config
        return {"runs": self.inputs(step, ctx), "system": self.system_text(ctx), "org": c.organisation,
                "division": c.division, "unofficial": c.allow_unofficial, "mixed": c.allow_mixed_revisions}

    def prepare(self, step: Step, ctx: Context) -> None:
        ctx.move_aside(ctx.out / "submission", step.slug)
        shutil.rmtree(ctx.out / ".submission.tmp", ignore_errors=True)

    def outputs_ok(self, step: Step, record: dict, ctx: Context) -> bool:
        return pathlib.Path(record.get("run_dir", "")).is_dir()

    def partial_output(self, step: Step, ctx: Context) -> str:
        return ""

    def run(self, step: Step, ctx: Context) -> Outcome:
        from harness.submission.package import PackageError, package
        c = ctx.config
        system_file = ctx.out / "system.json"
        system_file.write_text(self.system_text(ctx))
        tmp = ctx.out / ".submission.tmp"
        try:
            package([pathlib.Path(r) for r in self.inputs(step, ctx)], system_file, c.organisation, c.division,
                    tmp, allow_unofficial=c.allow_unofficial, allow_mixed_revisions=c.allow_mixed_revisions)
        except (PackageError, OSError) as exc:
            return Outcome("failed", str(exc))
        tmp.rename(ctx.out / "submission")
        root = ctx.out / "submission"
        return Outcome("passed", f"tree {root / c.division / c.organisation}", str(root))


class Check:
    """harness.submission.check on the packaged tree; its lines are the step's result."""
    subprocess = False
    serves_status = False

    def identity(self, step: Step, ctx: Context) -> dict:
        return {"package": ctx.state.step("package").get("fingerprint")}

    def prepare(self, step: Step, ctx: Context) -> None:
        pass

    def outputs_ok(self, step: Step, record: dict, ctx: Context) -> bool:
        return "lines" in record.get("data", {})

    def partial_output(self, step: Step, ctx: Context) -> str:
        return ""

    def run(self, step: Step, ctx: Context) -> Outcome:
        from harness.submission.check import Checker
        root = pathlib.Path(ctx.state.step("package").get("run_dir", ""))
        problems = Checker(root).run()
        detail = f"{len(problems)} problem(s)" if problems else "no problems found"
        return Outcome("invalid" if problems else "passed", detail, str(root), {"lines": problems})


KINDS = {"find-qps": FindQps(), "performance": Performance(), "accuracy": Accuracy(), "TEST06": Test06(),
         "package": Package(), "check": Check()}


def _manifest(run_dir: pathlib.Path) -> dict:
    try:
        m = json.loads((run_dir / "manifest.json").read_text())
        return m if isinstance(m, dict) else {}
    except (OSError, ValueError):
        return {}
