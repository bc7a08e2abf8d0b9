"""`python -m harness accuracy` (and its alias `python -m harness.accuracy`) on a run's log."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO


def _log(path, outputs: dict[int, list[int]], duplicate_of: int | None = None):
    entries = [{"seq_id": i, "qsl_idx": idx, "data": np.asarray(ids, "<i4").tobytes().hex().upper(),
                "token_count": len(ids)} for i, (idx, ids) in enumerate(outputs.items())]
    if duplicate_of is not None:
        entries.append({"seq_id": 99, "qsl_idx": duplicate_of, "data": "00000000", "token_count": 1})
    path.write_text(json.dumps(entries))


@pytest.mark.parametrize("command", [["harness", "accuracy"], ["harness.accuracy"]])
def test_accuracy_cli_writes_accuracy_txt(command, tiny_model, tiny_dataset, tmp_path):
    records = json.loads(tiny_dataset.read_text())
    _log(tmp_path / "mlperf_log_accuracy.json", {i: records[i]["tok_input"][-20:] for i in range(4)})
    result = subprocess.run([sys.executable, "-m", *command, "--log", tmp_path / "mlperf_log_accuracy.json",
                             "--dataset", tiny_dataset, "--tokenizer", tiny_model],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1, result.stderr  # 4 samples cannot meet the targets
    assert "gen_num" in result.stdout and "FAIL" in result.stdout
    assert "'gen_num': 4" in (tmp_path / "accuracy.txt").read_text()
    assert json.loads((tmp_path / "accuracy.json").read_text())["checks"][-1]["metric"] == "gen_num"
