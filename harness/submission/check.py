"""python -m harness check SUBMISSION/ : the rules MLCommons' checker applies to a llama3.1-8b tree,
plus the holes it leaves open (an INVALID or erroring performance run, a Server-limit run filed as
Interactive, a TEST06 pass file with no log behind it). One line per problem; exit 1 if any.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re

from harness.benchmarks.definitions import FOLDERS, AccuracyTarget, Benchmark, by_folder
from harness.benchmarks.scenarios import SCENARIOS
from harness.artifacts.verdict import read_detail_log
from harness.submission.rules import (MAX_ACCURACY_LOG_BYTES, MEASUREMENT_FIELDS, MIN_DURATION_MS, ROUND_SEEDS,
                                      SYSTEM_STATUS, SYSTEM_TYPES, TEST06_PASS_LINES, empty_system_fields,
                                      required_system_fields)


def _value_pattern(target: AccuracyTarget) -> re.Pattern:
    """The checker's regex for one metric of accuracy.txt: integers bare, scores maybe quoted."""
    if target.integer:
        return re.compile(rf".*'{target.metric}':\s([\d.]+).*")
    return re.compile(rf".*'{target.metric}':\s+'?([\d.]+)'?.*")


class Checker:
    def __init__(self, root: pathlib.Path):
        self.root = root
        self.problems: list[str] = []

    def problem(self, path: pathlib.Path, text: str) -> None:
        self.problems.append(f"{path.relative_to(self.root) if path != self.root else path}: {text}")

    def run(self) -> list[str]:
        divisions = [d for d in sorted(self.root.iterdir()) if d.is_dir()] if self.root.is_dir() else []
        if not divisions:
            self.problem(self.root, "no division folder (closed, open or network)")
        for division in divisions:
            for org in sorted(p for p in division.iterdir() if p.is_dir()):
                self.check_org(division.name, org)
        return self.problems

    def check_org(self, division: str, org: pathlib.Path) -> None:
        src = org / "src"
        if not src.is_dir() or not any(src.iterdir()):
            self.problem(src, "missing or empty (the harness source must be included)")
        results = org / "results"
        for system_dir in sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []:
            self.check_system(division, org, system_dir.name)
            for bench in sorted(p for p in system_dir.iterdir() if p.is_dir()):
                self.check_benchmark(division, bench)

    def check_system(self, division: str, org: pathlib.Path, name: str) -> None:
        path = org / "systems" / f"{name}.json"
        try:
            system = json.loads(path.read_text())
        except FileNotFoundError:
            return self.problem(path, "missing system description")
        except json.JSONDecodeError as exc:
            return self.problem(path, f"not valid JSON ({exc.msg})")
        for field in required_system_fields(division):
            if field not in system:
                self.problem(path, f"missing field {field}")
        for field in empty_system_fields(system):
            self.problem(path, f"field {field} needs a real answer (0 and empty text do not count)")
        if system.get("status") not in SYSTEM_STATUS:
            self.problem(path, f"status {system.get('status')!r} is not one of {', '.join(SYSTEM_STATUS)}")
        if system.get("system_type") not in SYSTEM_TYPES:
            self.problem(path, f"system_type {system.get('system_type')!r} is not one of {', '.join(SYSTEM_TYPES)}")
        if system.get("division") != division:
            self.problem(path, f"division {system.get('division')!r} differs from the folder {division!r}")
        if system.get("submitter") != org.name:
            self.problem(path, f"submitter {system.get('submitter')!r} differs from the folder {org.name!r}")
        networked = str(system.get("is_network", False)).lower() == "true"
        if division == "closed" and networked:
            self.problem(path, "is_network is true in the closed division")

    def check_benchmark(self, division: str, bench: pathlib.Path) -> None:
        benchmark = by_folder(bench.name)
        if benchmark is None:
            return self.problem(bench, f"unknown benchmark folder (expected one of {', '.join(FOLDERS)})")
        present = {p.name for p in bench.iterdir() if p.is_dir()}
        for scenario in benchmark.required_scenarios:
            if scenario not in present:
                self.problem(bench, f"required scenario {scenario} is missing")
        if benchmark.one_of_scenarios and not present & set(benchmark.one_of_scenarios):
            self.problem(bench, f"one of {' or '.join(benchmark.one_of_scenarios)} is required")
        for scenario in sorted(present - set(benchmark.allowed_scenarios)):
            self.problem(bench / scenario, "unexpected scenario folder (fails the whole benchmark)")
        for scenario in sorted(present & set(benchmark.allowed_scenarios)):
            where = bench / scenario
            self.check_performance(benchmark, where)
            self.check_accuracy(benchmark, where)
            if division != "open" and benchmark.test06:
                self.check_test06(where)
            self.check_measurements(where)

    def check_performance(self, benchmark: Benchmark, where: pathlib.Path) -> None:
        run = where / "performance" / "run_1"
        if not self._files(run, ("mlperf_log_summary.txt", "mlperf_log_detail.txt")):
            return
        verdict = read_detail_log(run / "mlperf_log_detail.txt")
        r = verdict.results
        if verdict.validity != "VALID":
            self.problem(run, f"LoadGen result is {verdict.validity}: {'; '.join(verdict.invalid_reasons) or 'no reason'}")
        if verdict.num_errors:
            self.problem(run, f"{verdict.num_errors} LoadGen error(s): {'; '.join(verdict.errors[:3])}")
        duration = r.get("effective_min_duration_ms")
        if duration is None or duration < MIN_DURATION_MS:
            self.problem(run, f"min_duration is {duration} ms; a submission needs >= {MIN_DURATION_MS} ms")
        samples = r.get("effective_performance_sample_count")
        size = benchmark.dataset_size
        if samples is None or samples < size:
            self.problem(run, f"performance_sample_count is {samples}; needs >= {size}")
        if SCENARIOS[where.name].one_query and (r.get("effective_samples_per_query") or 0) < size:
            self.problem(run, f"{where.name} samples_per_query is {r.get('effective_samples_per_query')}; needs >= {size}")
        for key, seed in ROUND_SEEDS.items():
            if r.get(key) != seed:
                self.problem(run, f"{key} is {r.get(key)}, not the v6.1 value {seed} (LoadGen from another round?)")
        if r.get("requested_use_token_latencies") is not True:
            self.problem(run, "use_token_latencies is off: mlperf.conf did not load (FromConfig missing or a "
                              "wrong model name)")
        if SCENARIOS[where.name].server_like and r.get("early_stopping_met") is not True:
            self.problem(run, "early stopping not met")
        limit = benchmark.latency_limits.get(where.name)
        if limit:
            ttft_limit, tpot_limit = limit.ttft_p99_ns, limit.tpot_p99_ns
            ttft = r.get("result_first_token_99.00_percentile_latency_ns")
            tpot = r.get("result_time_per_output_token_99.00_percentile_ns")
            if ttft is None or ttft >= ttft_limit:
                self.problem(run, f"p99 TTFT {ttft} ns is not below {where.name}'s {ttft_limit:.0f} ns")
            if tpot is None or tpot >= tpot_limit:
                self.problem(run, f"p99 TPOT {tpot} ns is not below {where.name}'s {tpot_limit:.0f} ns")
            requested = r.get("requested_server_ttft_latency")
            if requested is not None and requested != ttft_limit:
                self.problem(run, f"run used a TTFT limit of {requested} ns, not {where.name}'s {ttft_limit:.0f} ns "
                                  f"(wrong --model-name for this scenario)")

    def check_accuracy(self, benchmark: Benchmark, where: pathlib.Path) -> None:
        acc = where / "accuracy"
        names = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "accuracy.txt")
        if not self._files(acc, names):
            return
        verdict = read_detail_log(acc / "mlperf_log_detail.txt")
        if verdict.num_errors:
            self.problem(acc, f"{verdict.num_errors} LoadGen error(s) in the accuracy run: {'; '.join(verdict.errors[:3])}")
        # as the MLCommons checker counts: effective_accuracy_sample_count when logged, else the QSL size
        total = verdict.results.get("effective_accuracy_sample_count", verdict.results.get("qsl_reported_total_count"))
        if total != benchmark.dataset_size:
            self.problem(acc, f"the accuracy run covered {total} samples; needs all {benchmark.dataset_size}")
        if (acc / "mlperf_log_accuracy.json").stat().st_size > MAX_ACCURACY_LOG_BYTES:
            self.problem(acc / "mlperf_log_accuracy.json", "is not truncated (over 10 KiB)")
        text = (acc / "accuracy.txt").read_text(errors="replace").splitlines()
        if not any(re.match(r"^hash=([\w\d]+)$", line) for line in text):
            self.problem(acc / "accuracy.txt", "has no hash= line")
        values = {}
        for line in text:
            for target in benchmark.accuracy_targets:
                match = _value_pattern(target).match(line)
                if match:
                    values[target.metric] = match.group(1)
        missing = [t.metric for t in benchmark.accuracy_targets if t.metric not in values]
        if missing:
            return self.problem(acc / "accuracy.txt", f"no value for {', '.join(missing)}")
        for metric, value, required, passed in benchmark.judge(values):
            if not passed:
                self.problem(acc / "accuracy.txt", f"{metric} {value} does not meet {required}")

    def check_test06(self, where: pathlib.Path) -> None:
        test = where / "TEST06"
        if not self._files(test, ("verify_accuracy.txt",)):
            return
        text = (test / "verify_accuracy.txt").read_text(errors="replace")
        skipped = not SCENARIOS[where.name].needs_first_token and "First token check pass: Skipped" in text
        for line in TEST06_PASS_LINES:
            if line not in text and not (line.startswith("First token") and skipped):
                self.problem(test / "verify_accuracy.txt", f"lacks {line!r}")
        if not (test / "accuracy" / "mlperf_log_accuracy.json").is_file():
            self.problem(test, "accuracy/mlperf_log_accuracy.json is missing: nothing backs the pass lines")

    def check_measurements(self, where: pathlib.Path) -> None:
        for name in ("user.conf", "README.md"):
            path = where / name
            if not path.is_file() or not path.read_text().strip():
                self.problem(path, "missing or empty")
        path = where / "measurements.json"
        try:
            values = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return self.problem(path, "missing or not valid JSON")
        for field in MEASUREMENT_FIELDS:
            if not str(values.get(field, "")).strip():
                self.problem(path, f"field {field} is missing or empty")

    def _files(self, folder: pathlib.Path, names) -> bool:
        """True when every named file is there; otherwise one problem per missing file (or folder)."""
        if not folder.is_dir():
            self.problem(folder, "missing")
            return False
        missing = [name for name in names if not (folder / name).is_file()]
        for name in missing:
            self.problem(folder / name, f"missing {name}")
        return not missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness check", description=__doc__.splitlines()[0])
    p.add_argument("submission", type=pathlib.Path)
    args = p.parse_args(argv)
    problems = Checker(args.submission).run()
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)" if problems else "no problems found")
    return 1 if problems else 0
