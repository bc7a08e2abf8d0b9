"""Differential test: our production scorer against MLCommons' evaluation steps run under the versions
evaluation.py pins (tests/refenv.py builds that environment from the package registry and caches it;
tests/reference_evaluation.py runs the steps). The printed dicts must be byte-identical.

Skipped, with the reason, when the registry is unreachable or the environment cannot be built.
"""
from __future__ import annotations

import json
import random

import pytest

import accuracy_corpus as corpus
import refenv
from harness.benchmarks.definitions import LLAMA3_1_8B
from harness.submission.accuracy.report import score_run

pytestmark = pytest.mark.reference_env
HERE = __import__("pathlib").Path(__file__).resolve().parents[1]  # tests/: the reference script


@pytest.fixture(scope="module")
def ref():
    try:
        return refenv.get_refenv()
    except refenv.RefEnvUnavailable as exc:
        pytest.skip(f"reference environment unavailable: {exc}")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    return corpus.build_tokenizers(tmp_path_factory.mktemp("tokenizers"))


def reference_dict(ref, log, dataset, tokenizer_dir, *extra) -> str:
    result = ref.run(HERE / "reference_evaluation.py", "--mlperf-accuracy-file", log, "--dataset-file", dataset,
                     "--model-name", tokenizer_dir, "--dtype", "int32", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def our_dict(log, dataset, tokenizer_dir) -> str:
    score_run(log, dataset, str(tokenizer_dir), LLAMA3_1_8B)
    lines = (log.parent / "accuracy.txt").read_text().splitlines()
    return [line for line in lines if line.startswith("{")][-1]


def test_punkt_parameters_equal_nltks_english_pickle(ref):
    from punkt.data import english
    result = ref.run(HERE / "reference_evaluation.py", "--dump-punkt")
    assert result.returncode == 0, result.stderr[-2000:]
    pickle = json.loads(result.stdout)
    assert pickle["abbrev_types"] == sorted(english.ABBREV_TYPES)
    assert pickle["collocations"] == sorted(map(list, english.COLLOCATIONS))
    assert pickle["sent_starters"] == sorted(english.SENT_STARTERS)
    assert {k: v for k, v in pickle["ortho_context"]} == dict(english.ORTHO_CONTEXT)


@pytest.mark.parametrize("cleanup", ["on", "off"])
def test_300_samples_print_identical_dicts(ref, tokenizers, tmp_path, cleanup):
    tokenizer_dir = tokenizers[0] if cleanup == "on" else tokenizers[1]
    log, dataset = corpus.build_case(tmp_path, tokenizer_dir, 300, seed=1)
    theirs = reference_dict(ref, log, dataset, tokenizer_dir)
    ours = our_dict(log, dataset, tokenizer_dir)
    print(f"\n300 samples, clean-up {cleanup}\n  reference env: {theirs}\n  ours:          {ours}")
    assert ours == theirs
    texts = json.loads(reference_dict(ref, log, dataset, tokenizer_dir, "--dump-texts"))
    if cleanup == "on":  # the corpus exercises the clean-up: raw decoding differs for many samples
        from tokenizers import Tokenizer
        from harness.submission.accuracy.scoring import read_accuracy_log
        raw = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        outputs = read_accuracy_log(log)
        plain = raw.decode_batch([outputs[i].tolist() for i in outputs], skip_special_tokens=True)
        assert sum(a != b for a, b in zip(plain, texts["decoded"])) > 30


def test_curly_quotes_3_samples_print_identical_dicts(ref, tokenizers, tmp_path, monkeypatch):
    tokenizer_dir = tokenizers[0]
    log, dataset = corpus.build_case(tmp_path, tokenizer_dir, 3, predictions=corpus.CURLY_PREDICTIONS,
                                     references=corpus.CURLY_REFERENCES, seed=3)
    theirs = reference_dict(ref, log, dataset, tokenizer_dir)
    ours = our_dict(log, dataset, tokenizer_dir)
    print(f"\n3 curly-quote samples\n  reference env: {theirs}\n  ours:          {ours}")
    assert ours == theirs
    # the installed nltk's own rules (>= 3.10: a sentence ends at .” and .») would print another dict
    from nltk.tokenize.punkt import PunktSentenceTokenizer
    from harness.submission.accuracy import scoring, sentences
    nltk_310 = PunktSentenceTokenizer(sentences.english_tokenizer()._params)
    monkeypatch.setattr(scoring, "sent_tokenize", nltk_310.tokenize)
    newer = our_dict(log, dataset, tokenizer_dir)
    print(f"  nltk 3.10 rules: {newer}")
    assert newer != theirs


def test_13368_samples_print_identical_dicts(ref, tokenizers, tmp_path):
    tokenizer_dir = tokenizers[0]
    rng = random.Random(13368)
    base_predictions = [corpus.text(rng, rng.randint(1, 6)) for _ in range(600)]
    base_references = [corpus.text(rng, rng.randint(2, 4)) for _ in range(500)]
    predictions = [base_predictions[rng.randrange(600)] if rng.random() < 0.7 else corpus.text(rng, 3)
                   for _ in range(13368)]
    references = [base_references[i % 500] for i in range(13368)]
    log, dataset = corpus.build_case(tmp_path, tokenizer_dir, 13368, predictions=predictions,
                                     references=references, seed=5)
    theirs = reference_dict(ref, log, dataset, tokenizer_dir, "--processes", "2")
    ours = our_dict(log, dataset, tokenizer_dir)
    print(f"\n13368 samples, clean-up on\n  reference env: {theirs}\n  ours:          {ours}")
    assert ours == theirs
