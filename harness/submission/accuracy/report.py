"""python -m harness accuracy --log RUN/mlperf_log_accuracy.json --dataset cnn_eval.json --tokenizer DIR

Writes accuracy.txt (the form the MLCommons checker parses) and accuracy.json (with PASS/FAIL per
metric) next to the log, prints both, and exits 0 only when every metric passes.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from harness.benchmarks.definitions import FOLDERS, LLAMA3_1_8B, Benchmark, by_folder
from harness.artifacts.dataset import DatasetError, load_dataset
from harness.submission.accuracy import scoring
from harness.submission.accuracy.reference_compat import note as reference_compat_note

# a benchmark's accuracy_metric -> evaluate(log, references, tokenizer, dtype) -> results dict
METRICS = {"rouge": scoring.evaluate}


def score_run(log: pathlib.Path, dataset_path: pathlib.Path, tokenizer_dir: str, benchmark: Benchmark,
              dtype: str = "int32", out_dir: pathlib.Path | None = None) -> tuple[dict, list]:
    from transformers import AutoTokenizer

    dataset = load_dataset(dataset_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    except (OSError, ValueError) as exc:
        raise scoring.AccuracyLogError(f"--tokenizer {tokenizer_dir}: cannot load a tokenizer ({exc})") from None
    started = time.monotonic()
    results = METRICS[benchmark.accuracy_metric](log, dataset.outputs, tokenizer, dtype)
    rows = benchmark.judge(results)
    out_dir = out_dir or log.parent
    (out_dir / "accuracy.txt").write_text(scoring.accuracy_text(results))
    (out_dir / "accuracy.json").write_text(json.dumps(
        {"benchmark": benchmark.folder, "results": results, "seconds": round(time.monotonic() - started, 2),
         "reference_compat": reference_compat_note(tokenizer),
         "checks": [{"metric": m, "value": v, "required": r, "pass": p} for m, v, r, p in rows]}, indent=2))
    return results, rows


def print_report(results: dict, rows: list, benchmark: Benchmark) -> None:
    print(scoring.accuracy_text(results))
    print(f"against the {benchmark.folder} targets:")
    for metric, value, required, passed in rows:
        print(f"  {metric:10s} {value!s:>12}  {required:40s} {'PASS' if passed else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness accuracy", description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True, help="mlperf_log_accuracy.json of an AccuracyOnly run")
    p.add_argument("--dataset", required=True, help="the cnn_eval.json-format file the run used")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (the model's)")
    p.add_argument("--benchmark", choices=sorted(FOLDERS), default=LLAMA3_1_8B.folder)
    p.add_argument("--dtype", choices=("int32", "int64"), default="int32")
    args = p.parse_args(argv)
    benchmark = by_folder(args.benchmark)
    try:
        results, rows = score_run(pathlib.Path(args.log), pathlib.Path(args.dataset), args.tokenizer,
                                  benchmark, args.dtype)
    except (scoring.AccuracyLogError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_report(results, rows, benchmark)
    return 0 if all(passed for *_, passed in rows) else 1
