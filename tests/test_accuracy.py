"""Accuracy scoring: NLTK-identical sentence splits, reference-identical ROUGE, checker-readable output."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from harness.submission.accuracy.scoring import accuracy_text, evaluate, make_scorer, read_accuracy_log, AccuracyLogError
from harness.submission.accuracy.sentences import sent_tokenize
from harness.benchmarks.definitions import LLAMA3_1_8B
from harness.run.tiny_model import DATA_DIR

# Outputs of NLTK's English punkt model as NLTK documents them (nltk/tokenize/punkt.py docstring and
# nltk/test/unit/test_tokenize.py::test_sent_tokenize), i.e. what nltk.sent_tokenize returns.
NLTK_ENGLISH_CASES = [
    ("Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.  And "
     "sometimes sentences\ncan start with non-capitalized words.  i is a good variable\nname.",
     ["Punkt knows that the periods in Mr. Smith and Johann S. Bach\ndo not mark sentence boundaries.",
      "And sometimes sentences\ncan start with non-capitalized words.", "i is a good variable\nname."]),
    ("(How does it deal with this parenthesis?)  \"It should be part of the\nprevious sentence.\" \"(And the same "
     "with this one.)\" ('And this one!')\n\"('(And (this)) '?)\" [(and this. )]",
     ["(How does it deal with this parenthesis?)", "\"It should be part of the\nprevious sentence.\"",
      "\"(And the same with this one.)\"", "('And this one!')", "\"('(And (this)) '?)\"", "[(and this. )]"]),
    ("this is a test. . new sentence.", ["this is a test.", ".", "new sentence."]),
    ("This. . . That", ["This.", ".", ".", "That"]),
    ("This..... That", ["This..... That"]),
    ("This... That", ["This... That"]),
    ("This.. . That", ["This.. .", "That"]),
    ("This. .. That", ["This.", ".. That"]),
    ("This. ,. That", ["This.", ",.", "That"]),
    ("This!!! That", ["This!!!", "That"]),
    ("1. This is R .\n2. This is A .\n3. That's all", ["1.", "This is R .", "2.", "This is A .", "3.", "That's all"]),
    ("Hello.\tThere", ["Hello.", "There"]),
]

NEWS = ["Dr. Jones met Mr. and Mrs. Smith at 5 p.m. on Jan. 3. They left at 6 p.m. The U.S. economy grew 2.5 "
        "percent. Gen. Lee arrived.",
        "Shares of Acme Corp. rose 3% on Monday. Analysts at J.P. Morgan Chase & Co. said the St. Louis plant "
        "will reopen in Sept. 2025. \"We are pleased,\" said Sen. Warren. U.K. officials disagreed."]


@pytest.mark.parametrize("text, expected", NLTK_ENGLISH_CASES)
def test_sentences_equal_nltk_english_model(text, expected):
    assert sent_tokenize(text) == expected


def test_sentences_equal_the_wheels_independent_tokenizer_on_news():
    import punkt
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    texts = NEWS + [a["article"] for a in articles] + [a["highlights"] for a in articles]
    for text in texts:
        assert sent_tokenize(text) == punkt.sent_tokenize(text)
    assert sent_tokenize(NEWS[0])[0] == "Dr. Jones met Mr. and Mrs. Smith at 5 p.m. on Jan. 3."


def test_cached_stemming_scores_equal_rouge_score_defaults():
    from rouge_score import rouge_scorer
    plain = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    ours = make_scorer()
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    for a, b in zip(articles, articles[1:]):
        assert ours.score(a["highlights"], b["article"]) == plain.score(a["highlights"], b["article"])


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


def test_judge_against_targets():
    good = {"rouge1": "38.9", "rouge2": "16.0", "rougeL": "24.6", "rougeLsum": "35.9", "gen_len": 8_000_000,
            "gen_num": 13368}
    assert all(passed for *_, passed in LLAMA3_1_8B.judge(good))
    long = dict(good, gen_len=9_000_000)
    assert [m for m, *_, passed in LLAMA3_1_8B.judge(long) if not passed] == ["gen_len"]
    low = dict(good, rouge2="15.7")
    assert [m for m, *_, passed in LLAMA3_1_8B.judge(low) if not passed] == ["rouge2"]


def test_truncated_log_is_a_clear_error(tmp_path):
    (tmp_path / "log.json").write_text('[{"seq_id": 0, "qsl_idx": 0, "data": "0100')
    with pytest.raises(AccuracyLogError, match="not valid JSON"):
        read_accuracy_log(tmp_path / "log.json")


def test_accuracy_cli_writes_accuracy_txt(tiny_model, tiny_dataset, tmp_path):
    records = json.loads(tiny_dataset.read_text())
    _log(tmp_path / "mlperf_log_accuracy.json", {i: records[i]["tok_input"][-20:] for i in range(4)})
    result = subprocess.run([sys.executable, "-m", "harness.accuracy", "--log", tmp_path / "mlperf_log_accuracy.json",
                             "--dataset", tiny_dataset, "--tokenizer", tiny_model],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1, result.stderr  # 4 samples cannot meet the targets
    assert "gen_num" in result.stdout and "FAIL" in result.stdout
    assert "'gen_num': 4" in (tmp_path / "accuracy.txt").read_text()
    assert json.loads((tmp_path / "accuracy.json").read_text())["checks"][-1]["metric"] == "gen_num"
