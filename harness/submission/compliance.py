"""TEST06 (LLM output consistency) verification of a run's accuracy log.

The same three checks as MLCommons' compliance/TEST06/run_verification.py, with two fixes: EOS ids
are compared as integers, and Llama-3's three EOS ids are the default (the reference script
defaults to Llama-2's id 2 and compares a command-line id as text, so it passes vacuously).
The EOS ids come from the model's generation/tokenizer config when known (harness.submission.eos).
Writes <out>/TEST06/verify_accuracy.txt with the lines the submission checker looks for and copies
the log to <out>/TEST06/accuracy/; when the official script's verdict would differ, its lines go to
<out>/TEST06/official_verdict.txt (harness.submission.test06_official).
"""
from __future__ import annotations

import json
import pathlib
import shutil
from dataclasses import dataclass, field

import numpy as np

from harness.benchmarks.definitions import LLAMA3_EOS_IDS
from harness.benchmarks.scenarios import SCENARIOS
from harness.submission import test06_official as official


@dataclass
class Test06Result:
    first_token: bool | None  # None: skipped (Offline has no first-token payload)
    eos: bool
    length: bool
    samples: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.eos and self.length and self.first_token is not False

    def text(self) -> str:
        first = "Skipped" if self.first_token is None else self.first_token
        return (f"First token check pass: {first}\nEOS check pass: {self.eos}\n"
                f"Sample length check pass: {self.length}\n"
                + ("TEST06 verification complete\n" if self.passed else "TEST06 verification failed\n"))


def verify_test06(accuracy_log: pathlib.Path, scenario: str, eos_ids=LLAMA3_EOS_IDS,
                  dtype: str = "int32") -> Test06Result:
    entries = json.loads(accuracy_log.read_text())
    eos_set = set(int(e) for e in eos_ids)
    check_first = SCENARIOS[scenario].needs_first_token
    result = Test06Result(first_token=True if check_first else None, eos=True, length=True, samples=len(entries))
    if not entries:
        result.eos = result.length = False
        result.problems.append(f"{accuracy_log}: no samples logged")
    for entry in entries:
        index = entry.get("qsl_idx")
        data = np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.dtype(dtype).newbyteorder("<"))
        trailing = 0
        for token in data[::-1]:
            if int(token) not in eos_set:
                break
            trailing += 1
        if trailing >= 2:
            result.eos = False
            result.problems.append(f"qsl_idx {index}: {trailing} trailing EOS tokens")
        if "token_count" not in entry or len(data) != int(entry["token_count"]):
            result.length = False
            result.problems.append(f"qsl_idx {index}: {len(data)} tokens but token_count {entry.get('token_count')}")
        if check_first:
            first = np.frombuffer(bytes.fromhex(entry.get("token_data", "")), dtype=data.dtype)
            if len(first) == 0 or len(first) > len(data) or not np.array_equal(first, data[:len(first)]):
                result.first_token = False
                result.problems.append(f"qsl_idx {index}: first-token payload is not a prefix of the output")
    return result


def write_test06(run_dir: pathlib.Path, scenario: str, eos_ids=LLAMA3_EOS_IDS) -> Test06Result:
    log = run_dir / "mlperf_log_accuracy.json"
    result = verify_test06(log, scenario, eos_ids)
    out = run_dir / "TEST06"
    (out / "accuracy").mkdir(parents=True, exist_ok=True)
    theirs = official.official_text(*official.official_checks(json.loads(log.read_text()), scenario))
    note = ""
    if theirs != result.text():
        (out / official.FILE_NAME).write_text(official.HEADER + theirs)
        note = (f"# MLCommons' run_verification.py would print other lines ({official.FILE_NAME}); this verdict is "
                f"stricter on purpose (EOS ids {','.join(map(str, eos_ids))} as integers, not its default 2)\n")
    (out / "verify_accuracy.txt").write_text(result.text() + note)
    shutil.copy2(log, out / "accuracy" / "mlperf_log_accuracy.json")
    return result
