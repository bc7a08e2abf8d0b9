"""Reference compatibility without the reference environment: transformers 4.46.2's clean-up (one test
per replacement), nltk 3.8.1's split rules, the accuracy.json note, EOS ids from the model, TEST06's
official verdict, the checker's accuracy sample count, and measurements.json without local paths."""
from __future__ import annotations

import json

import numpy as np
import pytest

from harness.benchmarks.definitions import LLAMA3_1_8B
from harness.submission.accuracy.reference_compat import CLEAN_UP_REPLACEMENTS, batch_decode, clean_up_tokenization
from harness.submission.accuracy.sentences import sent_tokenize


@pytest.mark.parametrize("raw, cleaned", [
    ("Hello .", "Hello."),
    ("Why ?", "Why?"),
    ("Stop !", "Stop!"),
    ("one , two", "one, two"),
    ("rock ' n roll", "rock'n roll"),
    ("do n't", "don't"),
    ("I 'm", "I'm"),
    ("it 's", "it's"),
    ("we 've", "we've"),
    ("they 're", "they're"),
])
def test_each_clean_up_replacement(raw, cleaned):
    assert clean_up_tokenization(raw) == cleaned


def test_clean_up_is_4_46_2s_list_in_order_and_nothing_else():
    assert [old for old, _ in CLEAN_UP_REPLACEMENTS] == [" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've",
                                                         " 're"]
    # untouched by 4.46.2: ; : ) 'll 'd, and a space before ... only loses its first dot's space
    assert clean_up_tokenization("a ; b : c ) we 'll he 'd") == "a ; b : c ) we 'll he 'd"
    assert clean_up_tokenization("wait ...") == "wait..."
    assert clean_up_tokenization("x  .") == "x ."  # one replace pass, left to right
    assert clean_up_tokenization("it ' s") == "it's"


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    from accuracy_corpus import build_tokenizers
    return build_tokenizers(tmp_path_factory.mktemp("tok"))


def test_decoding_follows_the_tokenizer_config(tokenizer_dirs, tmp_path):
    from transformers import AutoTokenizer
    on, off = (AutoTokenizer.from_pretrained(str(d)) for d in tokenizer_dirs)
    text = "Mr. Smith does n't agree , he 's sure ."
    ids = [on.convert_tokens_to_ids("<|begin_of_text|>")] + on.encode(text, add_special_tokens=False) + \
        [on.convert_tokens_to_ids("<|eot_id|>")]
    assert batch_decode(on, [ids]) == ["Mr. Smith doesn't agree, he's sure."]
    assert batch_decode(off, [ids]) == [text]
    # a config without the key: 4.46.2 defaults to no clean-up
    absent = tmp_path / "absent"
    absent.mkdir()
    (absent / "tokenizer.json").write_bytes((tokenizer_dirs[0] / "tokenizer.json").read_bytes())
    config = json.loads((tokenizer_dirs[0] / "tokenizer_config.json").read_text())
    del config["clean_up_tokenization_spaces"]
    (absent / "tokenizer_config.json").write_text(json.dumps(config))
    assert batch_decode(AutoTokenizer.from_pretrained(str(absent)), [ids]) == [text]


@pytest.mark.parametrize("text, expected", [
    # nltk 3.8.1 does not end a sentence at a period followed by a curly quote or guillemet
    ("He said “No.” Then he left.", ["He said “No.” Then he left."]),
    ("She wrote ‘done.’ They agreed.", ["She wrote ‘done.’ They agreed."]),
    ("Il a dit «Non.» Puis il est parti.", ["Il a dit «Non.» Puis il est parti."]),
    # straight quotes and brackets: realigned into the sentence, as always
    ("He said \"No.\" Then he left.", ["He said \"No.\"", "Then he left."]),
    ("(It rained.) Then it stopped.", ["(It rained.)", "Then it stopped."]),
    # stdlib re, as 3.8.1: U+001F is whitespace, so it can separate sentences
    ("It ended.\x1fNext item.", ["It ended.", "Next item."]),
    ("Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3. They left.", ["Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3.",
                                                                 "They left."]),
    ("Wait... what? Yes.", ["Wait... what?", "Yes."]),
])
def test_sentences_split_as_nltk_3_8_1(text, expected):
    assert sent_tokenize(text) == expected


def test_accuracy_json_notes_the_reference_behaviour(tokenizer_dirs, tmp_path):
    from accuracy_corpus import build_case
    from harness.submission.accuracy.report import score_run
    for tokenizer_dir, cleanup in zip(tokenizer_dirs, (True, False)):
        out = tmp_path / tokenizer_dir.name
        log, dataset = build_case(out, tokenizer_dir, 5)
        score_run(log, dataset, str(tokenizer_dir), LLAMA3_1_8B)
        note = json.loads((out / "accuracy.json").read_text())["reference_compat"]
        assert note["clean_up_tokenization_spaces"] is cleanup
        assert "4.46.2" in note["clean_up"] if cleanup else note["clean_up"].startswith("none")
        assert "nltk 3.8.1" in note["sentence_split"]


# ---- EOS ids and TEST06 -----------------------------------------------------------------------

def test_eos_ids_from_the_models_configs(tmp_path):
    from harness.submission.eos import eos_ids_from_model
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [128001, 128008, 128009]}))
    (tmp_path / "config.json").write_text(json.dumps({"eos_token_id": 128001}))
    assert eos_ids_from_model(tmp_path) == (128001, 128008, 128009)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": 7}))
    assert eos_ids_from_model(tmp_path) == (7,)
    (tmp_path / "generation_config.json").unlink()
    assert eos_ids_from_model(tmp_path) == (128001,)
    (tmp_path / "config.json").unlink()
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|eot_id|>", "added_tokens_decoder": {"128009": {"content": "<|eot_id|>", "special": True}}}))
    assert eos_ids_from_model(tmp_path) == (128009,)
    assert eos_ids_from_model(tmp_path / "missing") is None and eos_ids_from_model(None) is None


def test_eos_ids_of_the_tiny_model(tiny_model):
    from harness.submission.eos import eos_ids_from_model
    config = json.loads((tiny_model / "generation_config.json").read_text())
    assert eos_ids_from_model(tiny_model) == tuple(config["eos_token_id"])


def _entry(i, ids, first=None):
    entry = {"seq_id": i, "qsl_idx": i, "data": np.asarray(ids, "<i4").tobytes().hex().upper(), "token_count": len(ids)}
    if first is not None:
        entry["token_data"] = np.asarray(first, "<i4").tobytes().hex().upper()
    return entry


def test_test06_writes_the_official_verdict_when_it_differs(tmp_path):
    from harness.submission.compliance import write_test06
    (tmp_path / "mlperf_log_accuracy.json").write_text(json.dumps([_entry(0, [5, 128009, 128009], first=[5])]))
    result = write_test06(tmp_path, "Server", eos_ids=(128001, 128008, 128009))
    assert not result.eos
    ours = (tmp_path / "TEST06" / "verify_accuracy.txt").read_text()
    assert "EOS check pass: False" in ours and "EOS check pass: True" not in ours  # the checker must not see a pass
    assert "stricter on purpose" in ours and "official_verdict.txt" in ours
    official = (tmp_path / "TEST06" / "official_verdict.txt").read_text()
    assert "EOS check pass: True" in official and "--eos_token_id 2" in official and "as text" in official


def test_test06_official_verdict_agrees_no_extra_file(tmp_path):
    from harness.submission.compliance import write_test06
    (tmp_path / "mlperf_log_accuracy.json").write_text(json.dumps([_entry(0, [5, 6, 128009], first=[5])]))
    assert write_test06(tmp_path, "Server").passed
    assert not (tmp_path / "TEST06" / "official_verdict.txt").exists()
    assert "official" not in (tmp_path / "TEST06" / "verify_accuracy.txt").read_text()


def test_official_checks_reproduce_run_verification_quirks():
    from harness.submission.test06_official import official_checks
    # empty first-token payload passes zip(); two trailing id-2 tokens fail; position 0 is never looked at
    assert official_checks([_entry(0, [5, 6], first=[])], "Server") == (True, True, True)
    assert official_checks([_entry(0, [5, 2, 2])], "Offline") == (None, False, True)
    assert official_checks([_entry(0, [2, 2])], "Offline") == (None, True, True)
    assert official_checks([dict(_entry(0, [5, 6]), token_count=3)], "Offline")[2] is False
    # a command-line id arrives as text and never equals a token
    assert official_checks([_entry(0, [5, 128009, 128009])], "Offline", eos_token_id="128009")[1] is True


# ---- checker: accuracy sample count ------------------------------------------------------------

def _accuracy_dir(where, **detail):
    acc = where / "accuracy"
    acc.mkdir(parents=True)
    lines = [":::MLLOG " + json.dumps({"key": k, "value": v, "metadata": {"is_error": False, "is_warning": False}})
             for k, v in dict(num_errors=0, **detail).items()]
    (acc / "mlperf_log_detail.txt").write_text("\n".join(lines) + "\n")
    (acc / "mlperf_log_summary.txt").write_text("x\n")
    (acc / "mlperf_log_accuracy.json").write_text("[]")
    good = {"rouge1": "38.9", "rouge2": "16.0", "rougeL": "24.6", "rougeLsum": "35.9", "gen_len": 8000000,
            "gen_num": 13368}
    (acc / "accuracy.txt").write_text(f"\nResults\n\n{good!r}\n\nhash=abc\n")


@pytest.mark.parametrize("detail, counted", [
    ({"qsl_reported_total_count": 13368, "effective_accuracy_sample_count": 5000}, 5000),
    ({"qsl_reported_total_count": 13368, "effective_accuracy_sample_count": 13368}, None),
    ({"qsl_reported_total_count": 13368}, None),
    ({"qsl_reported_total_count": 100}, 100),
])
def test_checker_counts_accuracy_samples_as_mlcommons_does(tmp_path, detail, counted):
    from harness.submission.check import Checker
    where = tmp_path / "closed" / "Acme" / "results" / "sys" / "llama3.1-8b" / "Offline"
    _accuracy_dir(where, **detail)
    checker = Checker(tmp_path)
    checker.check_accuracy(LLAMA3_1_8B, where)
    covered = [p for p in checker.problems if "accuracy run covered" in p]
    assert covered == ([] if counted is None else [covered[0]])
    if counted is not None:
        assert f"covered {counted} samples" in covered[0]


# ---- measurements.json -------------------------------------------------------------------------

@pytest.mark.parametrize("args, weights, transformations", [
    ({"dtype": "float32"}, "fp32", "none (no quantization; loaded as fp32)"),
    ({"dtype": "float16"}, "fp16", "none (no quantization; loaded as fp16)"),
    ({"dtype": "bfloat16"}, "bf16", "none"),
    ({"dtype": "auto"}, "bf16", "none"),
    ({}, "bf16", "none"),
    ({"dtype": "bfloat16", "quantization": "fp8"}, "fp8", "quantized to fp8 at load"),
])
def test_measurements_describe_weights_truthfully(args, weights, transformations):
    from harness.submission.package import measurements
    m = {"workers": [{"model": "/models/llama/Llama-3.1-8B-Instruct/", "engine_args": args}]}
    values = measurements(m, {})
    assert values["weight_data_types"] == weights and values["weight_transformations"] == transformations
    assert values["starting_weights_filename"] == "Llama-3.1-8B-Instruct"


def test_no_local_paths_in_submitted_names():
    from harness.submission.package import _readme, measurements
    from harness.submission.paths import public_name
    assert public_name("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama/Llama-3.1-8B-Instruct"
    assert public_name("~/models/x") == "x" and public_name("./runs/a/") == "a"
    assert public_name("--dataset=/data/cnn_eval.json") == "--dataset=cnn_eval.json"
    assert measurements({"workers": [{"model": "meta-llama/Llama-3.1-8B-Instruct"}]}, {})[
        "starting_weights_filename"] == "meta-llama/Llama-3.1-8B-Instruct"
    text = _readme("llama3.1-8b", "Offline", {"performance": (None, {"command": [
        "python", "-m", "harness", "--dataset", "/home/me/data/cnn_eval.json", "--model", "/models/Llama-3.1-8B"]})})
    assert "/home/me" not in text and "/models" not in text and "cnn_eval.json" in text
