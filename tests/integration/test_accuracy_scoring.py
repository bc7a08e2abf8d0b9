"""ROUGE scoring of accuracy logs decoded with the tiny model's tokenizer."""
from __future__ import annotations

import json
import re


from harness.run.tiny_model import DATA_DIR
from helpers import write_accuracy_log
from harness.submission.accuracy.scoring import accuracy_text, evaluate
from harness.submission.accuracy.sentences import sent_tokenize


def test_evaluate_dedupes_detokenizes_and_prints_plain_numbers(tiny_model, tmp_path):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    references = [a["highlights"] for a in articles[:3]]
    outputs = {i: tokenizer.encode(references[i]) for i in range(3)}  # BOS is special: skipped
    write_accuracy_log(tmp_path / "log.json", outputs, duplicate_of=1)
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
    write_accuracy_log(tmp_path / "log.json", outputs)
    assert evaluate(tmp_path / "log.json", references, tokenizer, processes=2) == \
        evaluate(tmp_path / "log.json", references, tokenizer, processes=1)
