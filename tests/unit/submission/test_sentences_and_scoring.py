"""Accuracy scoring without a model: NLTK-identical sentence splits, reference-identical ROUGE
stemming, clear errors for a broken log."""
from __future__ import annotations

import json

import pytest

from harness.run.tiny_model import DATA_DIR
from harness.submission.accuracy.scoring import AccuracyLogError, make_scorer, read_accuracy_log
from harness.submission.accuracy.sentences import sent_tokenize

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


def test_truncated_log_is_a_clear_error(tmp_path):
    (tmp_path / "log.json").write_text('[{"seq_id": 0, "qsl_idx": 0, "data": "0100')
    with pytest.raises(AccuracyLogError, match="not valid JSON"):
        read_accuracy_log(tmp_path / "log.json")
