"""One LoadGen test, start to verdict: workers, settings, QSL, StartTest, logs, exit code.

Exit codes: 0 accepted; 1 INVALID or LoadGen errors or incomplete accuracy log; 2 bad input;
3 the cluster failed (no worker left, or a sample could not be answered).
"""
from __future__ import annotations

import dataclasses
import gc
import json
import os
import pathlib
import shlex
import shutil
import sys
import threading
import time
from typing import Callable

from harness.benchmarks.scenarios import SCENARIOS
from harness.artifacts.dataset import DatasetError, check_against_model, load_dataset
from harness.run.default_model import ModelError
from harness.run.flags import build_parser
from harness.run.interrupts import Interrupted, SignalGuard, exit_code, hard_exit, run_interruptibly
from harness.run.status.observer import RunObserver, check_status_flags
from harness.run.local_workers import LocalWorkers
from harness.run.manifest import CampaignInfoError, Manifest, campaign_info
from harness.run.outputs import KeepingResponder, sample_lines
from harness.run.run_report import SMOKE_BANNER, report_run
from harness.run.validity import result_validity
from harness.run.preflight import PreflightError, check_disk_space, check_output, check_revisions, \
    check_token_ids, estimate_log_bytes, issued_samples, parse_workers
from harness.run.progress import Progress
from harness.run.settings import SettingsError, build_test_settings, check_model_name, effective_settings, \
    short_run_user_conf
from harness.deploy.errors import ClusterFileError, ClusterUpError
from harness.submission.eos import eos_ids_from_model
from sut.build_info import BuildInfoError
from sut.cluster import ClusterSUT, ClusterUnavailable
from sut.dispatch import DispatchLimits
from sut.engines.base import SamplingParams
from sut.dispatch.policies import create_policy
from sut import stage_trace
from sut.security import LinkSecurity, SecurityError
from sut.wire import RequestTooLarge
from sut.worker.launch import LaunchError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]  # for audit/
EXIT_INPUT, EXIT_CLUSTER = 2, 3
INTERRUPT_GRACE_S = 8.0  # after a signal, how long StartTest may take to return


class InputError(ValueError):
    pass


def sampling_params(args) -> SamplingParams:
    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens, min_new_tokens=args.min_new_tokens, seed=args.seed)
    if args.min_new_tokens > args.max_new_tokens:
        raise InputError(f"--min-new-tokens {args.min_new_tokens} exceeds --max-new-tokens {args.max_new_tokens}")
    if args.force_output_tokens:
        if args.mode == "AccuracyOnly":
            raise InputError("--force-output-tokens is for benchmarks only and is refused with --mode AccuracyOnly")
        params = dataclasses.replace(params, min_new_tokens=args.max_new_tokens, ignore_eos=True)
    return params


def make_run_dir(parent: str, scenario: str, mode: str) -> pathlib.Path:
    base = pathlib.Path(parent) / f"{time.strftime('%Y%m%d-%H%M%S')}-{scenario}-{mode}"
    run_dir, n = base, 1
    while run_dir.exists():
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    run_dir.mkdir(parents=True)
    return run_dir


class FatalHandler:
    """The one way out when a query cannot be answered: LoadGen would wait forever (and ignores
    Ctrl-C), so write the reason where the user looks, stop local workers, and exit now."""

    def __init__(self, run_dir: pathlib.Path | None, args=None, after_run: "RunHook | None" = None):
        self.run_dir = run_dir
        self.local: LocalWorkers | None = None
        self.manifest: Manifest | None = None
        self.args, self.after_run = args, after_run
        self._lock = threading.RLock()  # re-entered by a second signal arriving while an exit is written

    def finish(self, code: int) -> int:
        """The run ended with `code`: the after-run hook (history, alerts) may change it, never fail the run."""
        if self.after_run is None or self.run_dir is None:
            return code
        hook, self.after_run = self.after_run, None  # once, even if a fatal exit races a normal end
        try:
            return hook(self.args, self.run_dir, code)
        except Exception as exc:  # noqa: BLE001 - the run's own outcome stands
            print(f"warning: after-run step failed ({exc!r}); the run's result stands", file=sys.stderr, flush=True)
            return code

    def __call__(self, message: str) -> None:
        with self._lock:
            text = f"run failed: {message}"
            try:
                write_failure(self.run_dir, text)
                if self.manifest:
                    self.manifest.update(status="failed", failure=message)
            finally:
                print(f"\nERROR: {text}\nlogs kept in {self.run_dir}", file=sys.stderr, flush=True)
                if self.local:
                    self.local.kill()
                stage_trace.dump_quietly()  # os._exit skips atexit, where the trace is written
                os._exit(self.finish(EXIT_CLUSTER))


def write_failure(run_dir: pathlib.Path, text: str) -> None:
    try:
        (run_dir / "failure.txt").write_text(text + "\n")
    except OSError as exc:
        print(f"ERROR: could not write {run_dir / 'failure.txt'}: {exc.strerror or exc}", file=sys.stderr, flush=True)


def record_interrupt(fatal: "FatalHandler", guard: SignalGuard, message: str) -> None:
    """failure.txt and the manifest say "interrupted" and by which signal; stderr says where the logs are."""
    if fatal.run_dir is not None:
        write_failure(fatal.run_dir, f"run {message}")
    if fatal.manifest is not None:
        fatal.manifest.update(status="interrupted", interrupted_by=guard.name, failure=message)
    where = f"; logs kept in {fatal.run_dir}" if fatal.run_dir is not None else ""
    print(f"\nrun {message}{where}", file=sys.stderr, flush=True)


# hook(args, run_dir, exit_code) -> exit code, called once a run with a directory ends (before a fatal exit
# too); harness.ops.recorded_run records and compares the run there (run never imports ops)
RunHook = Callable[[object, pathlib.Path, int], int]


def run(args, after_run: RunHook | None = None) -> int:
    fatal = FatalHandler(None, args, after_run)

    def force_exit(signum: int, message: str) -> None:
        with fatal._lock:
            record_interrupt(fatal, guard, message)
            if fatal.local:
                fatal.local.stop(grace_s=0)
            hard_exit(exit_code(signum))

    with SignalGuard(force_exit) as guard:
        try:
            code = _run(args, guard, fatal)
        except Interrupted as exc:
            if fatal.local:  # a signal may have cut the run's own clean-up short
                fatal.local.stop(grace_s=3.0)
            record_interrupt(fatal, guard, guard.reason() + _kept_note(fatal.run_dir))
            code = exit_code(exc.signum)
    return fatal.finish(code)


def _kept_note(run_dir: pathlib.Path | None) -> str:
    if run_dir is None:
        return " before the run started"
    summary = run_dir / "mlperf_log_summary.txt"
    if summary.is_file() and summary.stat().st_size:
        return "; LoadGen finished (every outstanding query answered empty) and wrote its logs"
    return ""


def _run(args, guard: SignalGuard, fatal: "FatalHandler") -> int:
    import mlperf_loadgen as lg

    scenario = SCENARIOS[args.scenario]
    model_name = args.model_name or scenario.default_model_name
    check_model_name(args.scenario, model_name)
    params = sampling_params(args)
    if args.cluster and args.workers:
        raise InputError("--cluster and --workers both name the workers: give one")
    if args.up and not args.cluster:
        raise InputError("--up needs --cluster FILE")
    deployed = None
    if args.cluster:
        from harness.deploy.session import ClusterRun  # pydantic, asyncssh: only for cluster runs
        deployed = ClusterRun(args.cluster, args.up)
    smoke = args.workers is None and deployed is None and args.dataset is None and args.model is None
    if (args.workers or deployed) and not args.dataset:
        raise InputError(f"--dataset is required with {'--workers' if args.workers else '--cluster'}")
    if not args.workers and not deployed and args.dataset and not args.model:
        raise InputError("--dataset without --workers needs --model DIR for the local workers")
    addresses = parse_workers(args.workers) if args.workers else None
    check_output(args.output)
    check_status_flags(args)
    campaign = campaign_info()

    model_dir = args.model
    total_sample_count = args.total_sample_count
    if smoke:
        from harness.run import default_model
        model_dir = str(default_model.default_model_dir())
        dataset_path = default_model.default_dataset_path(pathlib.Path(model_dir))
        if total_sample_count is None and args.mode == "PerformanceOnly":
            total_sample_count = default_model.DEFAULT_SAMPLES
    else:
        dataset_path = pathlib.Path(args.dataset)
    dataset = load_dataset(dataset_path, total_sample_count)
    check_token_ids(dataset)
    model_eos_ids = None
    if model_dir and not args.workers and not deployed and args.local_engine == "hf":
        from harness.run.default_model import check_model_dir
        model_eos_ids = check_model_dir(model_dir, [len(t) for t in dataset.tok_inputs], params.max_new_tokens,
                                        str(dataset.path))

    run_dir = make_run_dir(args.output, args.scenario, args.mode)
    try:
        user_conf = pathlib.Path(args.user_conf or "user.conf")
        if smoke and args.user_conf is None:
            user_conf = run_dir / "user.conf"
            user_conf.write_text(short_run_user_conf(model_name, len(dataset), offline_queries=len(dataset)))
        settings = build_test_settings(lg, args.scenario, args.mode, model_name, user_conf)
        if user_conf.resolve() != (run_dir / "user.conf").resolve():
            shutil.copy(user_conf, run_dir / "user.conf")
        perf_count = settings.performance_sample_count_override or len(dataset)
        if perf_count > len(dataset):
            raise InputError(f"{user_conf}: performance_sample_count_override is {perf_count} (mlperf.conf's value "
                             f"unless user.conf sets it) but {dataset.path} has {len(dataset)} records; set "
                             f"{model_name}.*.performance_sample_count_override = {len(dataset)} or use the full "
                             f"dataset")
        accuracy = args.mode == "AccuracyOnly" or args.audit is not None
        issued = issued_samples(settings, scenario.server_like, args.mode == "AccuracyOnly", len(dataset))
        check_disk_space(run_dir, estimate_log_bytes(issued, accuracy, params.max_new_tokens, args.trace),
                         f"LoadGen's logs for about {issued} samples")
        observer = RunObserver(args, run_dir, model_name, settings, issued)
    except (InputError, SettingsError, PreflightError, SecurityError):
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing of a run yet: no stale folder under --output
        raise
    audit_config = run_dir / "audit.config"
    if args.audit:
        shutil.copy(REPO_ROOT / "audit" / args.audit / "audit.config", audit_config)

    fatal.run_dir = run_dir
    manifest = Manifest(run_dir / "manifest.json", status="starting", scenario=args.scenario, mode=args.mode,
                        model_name=model_name, smoke=smoke or bool(campaign and campaign.get("smoke")),
                        campaign=campaign, dataset=str(dataset.path), samples=len(dataset),
                        sampling=dataclasses.asdict(params), forced_output_tokens=args.force_output_tokens,
                        audit=args.audit, effective_settings=effective_settings(settings),
                        system_name=args.system_name)
    fatal.manifest = manifest
    if smoke:
        from harness.run.default_model import MODEL_LABEL
        print(f"*** {SMOKE_BANNER}: built-in {MODEL_LABEL}, {len(dataset)} samples, short settings ***",
              flush=True)
    if args.force_output_tokens:
        print("*** --force-output-tokens: every sample is forced to "
              f"{params.max_new_tokens} tokens (benchmark only) ***", flush=True)

    local = None
    cluster = None
    responder = KeepingResponder(lg)
    try:
        if deployed:
            if args.up:  # stopped by every way out of the run, as local workers are
                local = fatal.local = deployed
            manifest.update(cluster=deployed.describe())
            addresses = deployed.wait_ready(args.connect_timeout)
        elif not args.workers:
            local = LocalWorkers(args.local_workers, args.local_engine, model_dir, run_dir,
                                 shlex.split(args.local_worker_args))
            fatal.local = local
            manifest.update(local_workers=[{"pid": pid, "log": str(log)} for pid, log in local.pids_and_logs()])
            addresses = local.wait_ready(args.connect_timeout)
        limits = DispatchLimits(max_attempts=args.max_attempts, stall_timeout_s=args.stall_timeout,
                                request_timeout_s=args.request_timeout, no_worker_timeout_s=args.no_worker_timeout)
        policy = scenario.default_policy if args.policy == "auto" else args.policy
        security = (deployed.security if deployed and not (args.auth_token_file or args.tls_ca) else
                    LinkSecurity.from_files(args.auth_token_file, args.tls_ca, args.tls_client_cert,
                                            args.tls_client_key, args.tls_server_name))
        cluster = ClusterSUT(addresses, dataset.tok_inputs, params,
                             create_policy(policy, credit_factor=args.credit_factor, order=args.order),
                             needs_first_token=scenario.needs_first_token, on_fatal=fatal, limits=limits,
                             responder=observer.responder(responder), security=security)
        infos = cluster.start(args.connect_timeout)
        missing = cluster.missing_workers()
        if missing:
            print(f"warning: starting without {', '.join(missing)} (not ready); they join when ready",
                  file=sys.stderr)
        check_revisions(infos, args.allow_mixed_revisions)
        check_against_model(dataset, min(i["vocab_size"] or 0 for i in infos) or 0,
                            min(i["max_model_len"] or 0 for i in infos) or 0, params.max_new_tokens)
        validity = result_validity(infos)
        if not validity["closed"]:
            print("warning: Open division only, not comparable to token-exact runs: " + "; ".join(validity["reasons"]),
                  file=sys.stderr)
        manifest.update(status="running", workers=infos, policy=args.policy, link_security=security.describe(),
                        result_validity=validity)
        _start_test(lg, args, settings, dataset, perf_count, cluster, run_dir, audit_config, guard, fatal, observer)
        manifest.update(workers=cluster.worker_infos(), dispatch=cluster.snapshot(), **cluster.dispatch_record())
        if guard.signum:
            raise Interrupted(guard.signum)
        if scenario.server_like:
            (run_dir / "issue_schedule.json").write_text(json.dumps(cluster.issue_schedule()))
    finally:
        observer.close()
        if cluster:
            cluster.close()
        if local:
            local.stop(grace_s=3.0 if guard.signum else 5.0)
        if audit_config.exists():
            audit_config.unlink()
    tokenizer_dir = args.tokenizer or model_dir
    shown = sample_lines(responder.outputs, tokenizer_dir, args.eos_ids or model_eos_ids or
                         eos_ids_from_model(tokenizer_dir), params.max_new_tokens) if smoke else []
    return report_run(args, run_dir, manifest, dataset, smoke, tokenizer_dir, shown)


def _start_test(lg, args, settings, dataset, perf_count, cluster, run_dir, audit_config, guard: SignalGuard,
                fatal: FatalHandler, observer: RunObserver) -> None:
    sut = lg.ConstructSUT(observer.recorder.wrap_issue(cluster.issue_queries), cluster.flush_queries)
    qsl = lg.ConstructQSL(len(dataset), perf_count, lambda _: None, lambda _: None)
    output = lg.LogOutputSettings()
    output.outdir = str(run_dir)
    output.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = output
    log_settings.enable_trace = args.trace
    label = f"{args.scenario} {args.mode}"

    def stuck() -> None:  # a Server schedule runs on until min_duration: LoadGen cannot end it early
        with fatal._lock:
            record_interrupt(fatal, guard, (
                f"{guard.reason()}: every query was answered empty, but LoadGen cannot end a {args.scenario} "
                f"schedule early, so StartTest had not returned {INTERRUPT_GRACE_S:g} s later; LoadGen's summary "
                f"is not written (the detail log so far is kept)"))
            if fatal.local:
                fatal.local.stop(grace_s=1.0)
            if audit_config.exists():
                audit_config.unlink()
            stage_trace.dump_quietly()  # hard_exit skips atexit, where the trace is written
            hard_exit(exit_code(guard.signum))

    # the dataset's millions of token ints sit in the old generation: every full collection during
    # the test would walk them all (measured: 15-25 % of the coordinator's Offline ceiling)
    gc.collect()
    gc.freeze()
    try:
        watching = observer.watching(cluster.snapshot, interrupted=lambda: guard.signum is not None)
        with watching, Progress(cluster.snapshot, label, enabled=not args.quiet):
            run_interruptibly(lambda: lg.StartTestWithLogSettings(sut, qsl, settings, log_settings,
                                                                  str(audit_config)),
                              guard, cluster.abort, INTERRUPT_GRACE_S, stuck)
    finally:
        gc.unfreeze()
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def main(argv: list[str] | None = None, after_run: RunHook | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # a bad flag (one `error:` line, exit 2) or --help
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    try:
        return run(args, after_run)
    except (InputError, DatasetError, SettingsError, LaunchError, PreflightError, ModelError, SecurityError,
            RequestTooLarge, CampaignInfoError, BuildInfoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterFileError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    except (ClusterUnavailable, ClusterUpError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
