"""The end of a run: LoadGen's summary and verdict read back, TEST06 verified, an AccuracyOnly run
scored, the outcome recorded in the manifest, and the exit code."""
from __future__ import annotations

import json
import pathlib
import sys

from harness.artifacts.verdict import read_detail_log, summary_reasons
from harness.benchmarks.definitions import by_model_name
from harness.run.manifest import Manifest
from harness.run.outputs import explain_errors
from harness.submission.compliance import write_test06
from harness.submission.eos import eos_ids_from_model

EXIT_OK, EXIT_REJECTED = 0, 1
SMOKE_BANNER = "smoke run, not a valid submission run"

def score_accuracy(run_dir: pathlib.Path, dataset, tokenizer_dir: str, manifest: Manifest) -> None:
    from harness.submission.accuracy.report import print_report, score_run

    benchmark = by_model_name(manifest.data["model_name"])
    results, rows = score_run(run_dir / "mlperf_log_accuracy.json", dataset.path, tokenizer_dir, benchmark)
    print_report(results, rows, benchmark)
    manifest.update(accuracy=results, accuracy_pass=all(passed for *_, passed in rows))


def report_run(args, run_dir: pathlib.Path, manifest: Manifest, dataset, smoke: bool,
               tokenizer_dir: str | None, shown: list[str] = ()) -> int:
    """Print the summary, the verdict and why, TEST06's and accuracy's results; record them in the
    manifest; EXIT_REJECTED when the run is not accepted."""
    summary = run_dir / "mlperf_log_summary.txt"
    if summary.is_file() and args.mode == "PerformanceOnly":
        print(summary.read_text())
    for line in shown:
        print(line)
    verdict = read_detail_log(run_dir / "mlperf_log_detail.txt")
    reasons = verdict.invalid_reasons + ([] if verdict.valid else summary_reasons(summary))
    problems = []
    if not verdict.finished:
        problems.append("LoadGen did not finish the test")
    elif args.mode == "PerformanceOnly" and not verdict.valid and not args.allow_invalid:
        problems.append("LoadGen result is " + verdict.validity)
    if verdict.num_errors:
        problems.append(f"LoadGen logged {verdict.num_errors} error(s): " + "; ".join(verdict.errors[:3]))
    if args.audit:
        problems = [p for p in problems if not p.startswith("LoadGen result is")]  # TEST06 needs no VALID
        eos_ids = args.eos_ids or eos_ids_from_model(tokenizer_dir) or by_model_name(manifest.data["model_name"]).eos_ids
        audit = write_test06(run_dir, args.scenario, eos_ids=eos_ids)
        print(audit.text().rstrip())
        for problem in audit.problems[:10]:
            print(f"  TEST06: {problem}")
        if not audit.passed:
            problems.append("TEST06 verification failed")
        manifest.update(test06=audit.text())
    if args.mode == "AccuracyOnly":
        logged = accuracy_log_indices(run_dir / "mlperf_log_accuracy.json")
        if logged != len(dataset):
            problems.append(f"accuracy log holds {logged} of {len(dataset)} samples")
        print(f"Result: accuracy run, {logged} of {len(dataset)} samples logged, num_errors {verdict.num_errors}")
        if tokenizer_dir and logged:
            score_accuracy(run_dir, dataset, tokenizer_dir, manifest)
        elif logged:
            print("accuracy not scored: give --tokenizer DIR (or score later with python -m harness.accuracy)")
    else:
        print(f"Result: {verdict.validity}, num_errors {verdict.num_errors}")
    manifest.update(status="done", validity=verdict.validity, num_errors=verdict.num_errors,
                    invalid_reasons=reasons, accepted=not problems)
    for reason in dict.fromkeys(reasons):
        print(f"  invalid: {reason}")
    for error in verdict.errors[:10]:
        print(f"  error: {error}")
    for line in explain_errors(verdict.errors, verdict.num_errors):
        print(line)
    if smoke:
        print(f"({SMOKE_BANNER})")
    print(f"logs: {run_dir}")
    for problem in problems:
        print(f"NOT ACCEPTED: {problem}", file=sys.stderr)
    return EXIT_REJECTED if problems else EXIT_OK


def accuracy_log_indices(path: pathlib.Path) -> int:
    try:
        return len({entry["qsl_idx"] for entry in json.loads(path.read_text())})
    except (OSError, ValueError, KeyError, TypeError):
        return 0
