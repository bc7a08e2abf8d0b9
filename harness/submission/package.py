"""python -m harness package --runs DIR... --system system.json --org NAME --division closed|open|network --out DIR

Builds the MLPerf v6.x submission tree from run directories (their manifest.json says what each
run is): <division>/<org>/results/<system>/<benchmark>/<Scenario>/{performance/run_1, accuracy,
TEST06, measurements.json, user.conf, README.md}, systems/<system>.json and src/. Accuracy logs
are hashed into accuracy.txt and cut to their first and last 4 KB, as MLCommons' truncation tool does.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import platform
import shutil
import sys

from harness.benchmarks.definitions import submission_folder
from harness.submission.paths import describe_weights, public_name
from harness.submission.rules import (DIVISIONS, MEASUREMENT_FIELDS, SYSTEM_STATUS, SYSTEM_TYPES, VIEWABLE_BYTES,
                                      empty_system_fields, required_system_fields)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE_ITEMS = ("harness", "sut", "scripts", "audit", "setup.py", "README.md", "user.conf", "mlperf.conf")


class PackageError(ValueError):
    pass


def _manifest(run: pathlib.Path) -> dict | None:
    """The run's manifest, or None (with a warning line) for a folder that is not a finished run:
    `--runs runs/*` may sweep up stale, foreign or interrupted folders, which must not stop the rest."""
    problem = None
    try:
        m = json.loads((run / "manifest.json").read_text())
        if not isinstance(m, dict):
            problem = "manifest.json is not a JSON object"
        elif m.get("status") != "done":
            problem = f"status is {m.get('status')!r}, not a finished run"
    except FileNotFoundError:
        problem = "no manifest.json (not a harness run directory)"
    except NotADirectoryError:
        problem = "not a directory"
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"manifest.json cannot be read ({exc})"
    except json.JSONDecodeError as exc:
        problem = f"manifest.json is not valid JSON ({exc.msg})"
    if problem:
        print(f"warning: --runs {run}: {problem}; skipped", file=sys.stderr)
        return None
    return m


def unofficial_reasons(m: dict) -> list[str]:
    """Why a run is not an official result: a smoke run, simulated workers, forced output lengths."""
    reasons = []
    if m.get("smoke"):
        reasons.append("a smoke run (built-in tiny model)")
    simulated = [w.get("address") or w.get("worker_id") or "?" for w in m.get("workers") or [] if w.get("simulated")]
    if simulated:
        reasons.append(f"simulated workers ({', '.join(simulated)})")
    if m.get("forced_output_tokens"):
        reasons.append("--force-output-tokens (output lengths forced, EOS ignored)")
    return reasons


def classify(runs: list[pathlib.Path], allow_unofficial: bool = False, allow_mixed_revisions: bool = False
             ) -> dict[tuple[str, str], dict[str, tuple[pathlib.Path, dict]]]:
    """(benchmark, scenario) -> {'performance'|'accuracy'|'TEST06': (run dir, manifest)}."""
    groups: dict[tuple[str, str], dict] = {}
    revisions: dict[str, list[pathlib.Path]] = {}
    for run in runs:
        m = _manifest(run)
        if m is None:
            continue
        reasons = unofficial_reasons(m)
        if reasons and not allow_unofficial:
            raise PackageError(f"--runs {run}: not an official result: {'; '.join(reasons)}; pass "
                               f"--allow-unofficial to package it anyway (its README will say so)")
        revisions.setdefault(str(m.get("git_revision") or "unknown"), []).append(run)
        kind = "TEST06" if m.get("audit") == "TEST06" else ("accuracy" if m["mode"] == "AccuracyOnly" else "performance")
        key = (submission_folder(m["model_name"]), m["scenario"])
        if kind in groups.setdefault(key, {}):
            raise PackageError(f"--runs: two {kind} runs for {key[0]}/{key[1]}: {groups[key][kind][0]} and {run}")
        groups[key][kind] = (run, m)
    if not groups:
        raise PackageError("--runs: no finished harness run among them")
    if len(revisions) > 1 and not allow_mixed_revisions:
        raise PackageError("--runs: made by different harness revisions: " + "; ".join(
            f"{rev} ({', '.join(str(r) for r in runs_)})" for rev, runs_ in sorted(revisions.items()))
            + "; pass --allow-mixed-revisions to package them together (the README will say so)")
    return groups


def truncate_accuracy_log(path: pathlib.Path) -> None:
    data = path.read_bytes()
    if len(data) >= VIEWABLE_BYTES:
        path.write_bytes(data[:VIEWABLE_BYTES] + b"\n\n...\n\n" + data[-VIEWABLE_BYTES:])


def detect_system(manifests: list[dict]) -> dict:
    """What this machine and the runs' records tell; the user's file overrides every value."""
    workers = [w for m in manifests for w in m.get("workers") or []]
    hosts = {w.get("address", "").rsplit(":", 1)[0] for w in workers} - {""}
    hosts = {"localhost" if h in ("127.0.0.1", "::1", "[::1]") else h for h in hosts}
    devices = sorted({w.get("engine_args", {}).get("device_name", "") for w in workers} - {""})
    engines = sorted({f"{w['engine']} {v}" for w in workers for k, v in (w.get("versions") or {}).items()
                      if k in ("vllm", "transformers")})
    versions = manifests[0].get("versions", {}) if manifests else {}
    detected = {"number_of_nodes": len(hosts) or 1, "operating_system": f"{platform.system()} {platform.release()}",
                "framework": ", ".join(engines), "host_processor_core_count": os.cpu_count(),
                "other_software_stack": ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))}
    if devices:
        detected["accelerator_model_name"] = ", ".join(devices)
        detected["accelerators_per_node"] = max(1, len(workers) // max(1, len(hosts)))
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                detected["host_processor_model_name"] = line.split(":", 1)[1].strip()
                break
        mem_kb = int(next(l for l in pathlib.Path("/proc/meminfo").read_text().splitlines()
                          if l.startswith("MemTotal")).split()[1])
        detected["host_memory_capacity"] = f"{round(mem_kb / 1024 ** 2)} GB"
    except (OSError, StopIteration, ValueError):
        pass
    return detected


def build_system(user_file: pathlib.Path, org: str, division: str, manifests: list[dict]) -> dict:
    try:
        user = json.loads(user_file.read_text())
    except FileNotFoundError:
        raise PackageError(f"--system {user_file}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PackageError(f"--system {user_file}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    system = {**detect_system(manifests), **user, "division": division, "submitter": org}
    if division == "network":
        system["is_network"] = True
    elif system.get("is_network") not in (None, False, "false", "False"):
        raise PackageError(f"--system {user_file}: is_network is set but --division is {division}")
    missing = [f for f in required_system_fields(division) if f not in system]
    empty = empty_system_fields(system)
    if missing or empty:
        raise PackageError(f"--system {user_file}: missing fields: {', '.join(missing) or 'none'}; "
                           f"fields that need a real answer (0 and \"\" do not count): {', '.join(empty) or 'none'}")
    if system["status"] not in SYSTEM_STATUS:
        raise PackageError(f"--system {user_file}: status {system['status']!r} must be one of {SYSTEM_STATUS}")
    if system["system_type"] not in SYSTEM_TYPES:
        raise PackageError(f"--system {user_file}: system_type {system['system_type']!r} must be one of {SYSTEM_TYPES}")
    return system


def measurements(m: dict, user: dict) -> dict:
    worker = (m.get("workers") or [{}])[0]
    args = worker.get("engine_args", {})
    weights, transformations = describe_weights(args.get("dtype"), args.get("quantization"))
    values = {"input_data_types": "int32", "retraining": "No",
              "starting_weights_filename": public_name(worker.get("model") or "meta-llama/Llama-3.1-8B-Instruct"),
              "weight_data_types": weights, "weight_transformations": transformations}
    values.update({k: v for k, v in user.items() if k in MEASUREMENT_FIELDS})
    return values


def copy_logs(src: pathlib.Path, dst: pathlib.Path, names: tuple[str, ...]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (src / name).is_file():
            raise PackageError(f"{src}: {name} is missing")
        shutil.copy2(src / name, dst / name)


def package(runs: list[pathlib.Path], system_file: pathlib.Path, org: str, division: str, out: pathlib.Path,
            measurements_file: pathlib.Path | None = None, allow_unofficial: bool = False,
            allow_mixed_revisions: bool = False) -> pathlib.Path:
    if division not in DIVISIONS:
        raise PackageError(f"--division {division!r}: choose one of {', '.join(DIVISIONS)}")
    groups = classify(runs, allow_unofficial, allow_mixed_revisions)
    manifests = [m for group in groups.values() for _, m in group.values()]
    system = build_system(system_file, org, division, manifests)
    user_measurements = json.loads(measurements_file.read_text()) if measurements_file else {}
    root = out / division / org
    if root.exists():
        raise PackageError(f"--out {out}: {root} exists already; choose a new folder")
    name = system["system_name"].replace(" ", "_")
    for (benchmark, scenario), group in sorted(groups.items()):
        where = root / "results" / name / benchmark / scenario
        if "performance" in group:
            run, m = group["performance"]
            copy_logs(run, where / "performance" / "run_1", ("mlperf_log_summary.txt", "mlperf_log_detail.txt"))
        if "accuracy" in group:
            run, m = group["accuracy"]
            if not (run / "accuracy.txt").is_file():
                raise PackageError(f"{run}: no accuracy.txt; score it first: python -m harness accuracy --log "
                                   f"{run / 'mlperf_log_accuracy.json'} --dataset ... --tokenizer ...")
            copy_logs(run, where / "accuracy", ("mlperf_log_summary.txt", "mlperf_log_detail.txt",
                                                "mlperf_log_accuracy.json", "accuracy.txt"))
            log = where / "accuracy" / "mlperf_log_accuracy.json"
            digest = hashlib.sha256(log.read_bytes()).hexdigest()
            with open(where / "accuracy" / "accuracy.txt", "a") as handle:
                handle.write(f"\nhash={digest}\n")
            truncate_accuracy_log(log)
        if "TEST06" in group:
            run, _ = group["TEST06"]
            if not (run / "TEST06" / "verify_accuracy.txt").is_file():
                raise PackageError(f"{run}: no TEST06/verify_accuracy.txt (was it run with --audit TEST06?)")
            shutil.copytree(run / "TEST06", where / "TEST06")
        first_run, first = next(iter(group.values()))
        where.mkdir(parents=True, exist_ok=True)
        (where / "measurements.json").write_text(json.dumps(measurements(first, user_measurements), indent=2) + "\n")
        shutil.copy2(first_run / "user.conf", where / "user.conf")
        (where / "README.md").write_text(_readme(benchmark, scenario, group))
    (root / "systems").mkdir(parents=True, exist_ok=True)
    (root / "systems" / f"{name}.json").write_text(json.dumps(system, indent=2) + "\n")
    src = root / "src"
    src.mkdir(parents=True)
    for item in SOURCE_ITEMS:
        path = REPO_ROOT / item
        if path.is_dir():
            shutil.copytree(path, src / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.is_file():
            shutil.copy2(path, src / item)
    return root


def _readme(benchmark: str, scenario: str, group: dict) -> str:
    lines = [f"# {benchmark} {scenario}", ""]
    unofficial = {kind: unofficial_reasons(m) for kind, (_, m) in sorted(group.items()) if unofficial_reasons(m)}
    if unofficial:
        lines += ["**UNOFFICIAL: not a valid MLPerf result** (packaged with --allow-unofficial):", ""]
        lines += [f"- {kind}: {'; '.join(reasons)}" for kind, reasons in unofficial.items()] + [""]
    revisions = {str(m.get("git_revision") or "unknown") for _, m in group.values()}
    if len(revisions) > 1:
        lines += [f"**Mixed harness revisions** (packaged with --allow-mixed-revisions): "
                  f"{', '.join(sorted(revisions))}", ""]
    lines += ["Produced with mlperf-llm-harness. Commands, as recorded in each run's manifest.json:", ""]
    for kind, (run, m) in sorted(group.items()):
        lines += [f"- {kind} (harness revision {m.get('git_revision') or 'unknown'}): "
                  f"`{' '.join(public_name(a) for a in m.get('command', []))}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness package", description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, type=pathlib.Path)
    p.add_argument("--system", required=True, type=pathlib.Path, help="system description JSON (your fields)")
    p.add_argument("--org", required=True)
    p.add_argument("--division", required=True, choices=DIVISIONS)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--measurements", type=pathlib.Path, default=None,
                   help="JSON with measurements.json fields to override the detected ones")
    p.add_argument("--allow-unofficial", action="store_true",
                   help="package smoke runs, runs on simulated workers or with --force-output-tokens (each "
                        "scenario's README says so)")
    p.add_argument("--allow-mixed-revisions", action="store_true",
                   help="package runs made by different harness revisions (the README names them)")
    args = p.parse_args(argv)
    try:
        root = package(args.runs, args.system, args.org, args.division, args.out, args.measurements,
                       args.allow_unofficial, args.allow_mixed_revisions)
    except PackageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"submission tree written: {root}")
    return 0
