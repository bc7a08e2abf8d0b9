"""`python -m harness accuracy` (and its alias `python -m harness.accuracy`) on a run's log."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import REPO, write_accuracy_log


@pytest.mark.parametrize("command", [["harness", "accuracy"], ["harness.accuracy"]])
def test_accuracy_cli_writes_accuracy_txt(command, tiny_model, tiny_dataset, tmp_path):
    records = json.loads(tiny_dataset.read_text())
    write_accuracy_log(tmp_path / "mlperf_log_accuracy.json", {i: records[i]["tok_input"][-20:] for i in range(4)})
    result = subprocess.run([sys.executable, "-m", *command, "--log", tmp_path / "mlperf_log_accuracy.json",
                             "--dataset", tiny_dataset, "--tokenizer", tiny_model],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1, result.stderr  # 4 samples cannot meet the targets
    assert "gen_num" in result.stdout and "FAIL" in result.stdout
    assert "'gen_num': 4" in (tmp_path / "accuracy.txt").read_text()
    assert json.loads((tmp_path / "accuracy.json").read_text())["checks"][-1]["metric"] == "gen_num"
