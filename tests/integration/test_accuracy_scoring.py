"""ROUGE scoring of accuracy logs decoded with the tiny model's tokenizer."""
from __future__ import annotations

import json
import re

import numpy as np

from harness.run.tiny_model import DATA_DIR
from harness.submission.accuracy.scoring import accuracy_text, evaluate
from harness.submission.accuracy.sentences import sent_tokenize


def _log(path, outputs: dict[int, list[int]], duplicate_of: int | None = None):
    entries = [{"seq_id": i, "qsl_idx": idx, "data": np.asarray(ids, "<i4").tobytes().hex().upper(),
                "token_count": len(ids)} for i, (idx, ids) in enumerate(outputs.items())]
    if duplicate_of is not None:
        entries.append({"seq_id": 99, "qsl_idx": duplicate_of, "data": "00000000", "token_count": 1})
    path.write_text(json.dumps(entries))


def test_evaluate_dedupes_detokenizes_and_prints_plain_numbers(tiny_model, tmp_path):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    references = [a["highlights"] for a in articles[:3]]
    outputs = {i: tokenizer.encode(references[i]) for i in range(3)}  # BOS is special: skipped
    _log(tmp_path / "log.json", outputs, duplicate_of=1)
    results = evaluate(tmp_path / "log.json", references, tokenizer, processes=1)
    assert results["rouge1"] == "100.0" and results["rougeLsum"] == "100.0"
    assert results["gen_num"] == 3
    assert results["gen_len"] == sum(len("\n".join(sent_tokenize(r.strip()))) for r in references)
    text = accuracy_text(results)
    assert "np.int64" not in text
    # the submission checker's patterns (tools/submission/submission_checker/constants.py)
    line = [l for l in text.splitlines() if l.startswith("{")][0]
    assert re.match(r".*'rouge1':\s+'?([\d.]+)'?.*", line).group(1) == "100.0"
    assert re.match(r".*'gen_len':\s([\d.]+).*", line).group(1) == str(results["gen_len"])


def test_parallel_and_serial_scoring_agree(tiny_model, tmp_path):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    references = [a["highlights"] for a in articles] * 30
    outputs = {i: tokenizer.encode(articles[(i + 1) % len(articles)]["article"])[:128] for i in range(len(references))}
    _log(tmp_path / "log.json", outputs)
    assert evaluate(tmp_path / "log.json", references, tokenizer, processes=2) == \
        evaluate(tmp_path / "log.json", references, tokenizer, processes=1)
