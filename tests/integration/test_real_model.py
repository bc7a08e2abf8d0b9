"""The real small model (SmolLM2-135M-Instruct) through real workers and real LoadGen: answers that
stop early on EOS, a one-token answer, TEST06 on real stops (and on logs doctored to break each
check), the first-token payload, accuracy scored on real summaries."""
from __future__ import annotations

import ast
import json

import numpy as np

from harness.submission.compliance import verify_test06
from helpers import only_run_dir, run_harness

EOS = (2,)  # SmolLM2's <|im_end|>, from its generation_config.json
MAX_NEW = 128


def _tokens(entry: dict, field: str = "data") -> list[int]:
    return np.frombuffer(bytes.fromhex(entry[field]), "<i4").tolist()


def test_offline_accuracy_real_stops_and_rouge(real_workers, real_model, real_dataset, smoke_conf, tmp_path):
    result = run_harness("--scenario", "Offline", "--mode", "AccuracyOnly", "--workers", ",".join(real_workers),
                         "--dataset", real_dataset, "--total-sample-count", 8, "--user-conf", smoke_conf(8),
                         "--tokenizer", real_model, "--output", tmp_path / "runs", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    log = json.loads((run_dir / "mlperf_log_accuracy.json").read_text())
    assert sorted(e["qsl_idx"] for e in log) == list(range(8))
    outputs = {e["qsl_idx"]: _tokens(e) for e in log}
    for entry in log:
        tokens = outputs[entry["qsl_idx"]]
        assert entry["token_count"] == len(tokens) >= 2
        # the rules' stop: EOS ends the answer and is part of it (as vLLM's token_ids), exactly once
        assert all(t not in EOS for t in tokens[:-1]), entry["qsl_idx"]
        assert tokens[-1] in EOS or len(tokens) == MAX_NEW, (entry["qsl_idx"], len(tokens))
    early = [i for i, t in outputs.items() if len(t) < MAX_NEW and t[-1] in EOS]
    assert early, {i: len(t) for i, t in outputs.items()}
    scores = ast.literal_eval((run_dir / "accuracy.txt").read_text().strip().splitlines()[-1])
    assert scores["gen_num"] == 8 and scores["gen_len"] > 8 * 100
    assert float(scores["rouge1"]) > 10 and float(scores["rougeL"]) > 5, scores
    assert verify_test06(run_dir / "mlperf_log_accuracy.json", "Offline", EOS).passed


def test_one_token_answer_is_reported_plainly(real_workers, real_dataset, smoke_conf, tmp_path):
    result = run_harness("--scenario", "Offline", "--workers", ",".join(real_workers), "--dataset", real_dataset,
                         "--total-sample-count", 2, "--user-conf", smoke_conf(2), "--max-new-tokens", 1,
                         "--output", tmp_path / "runs", cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "the model answered some samples with a single token (n_tokens = 1" in result.stdout
    assert "--min-new-tokens 2 avoids it" in result.stdout
    assert "NOT ACCEPTED: LoadGen logged" in result.stderr


def test_server_first_tokens_and_test06_on_real_stops(real_workers, real_dataset, smoke_conf, tmp_path):
    conf = smoke_conf(6, extra="llama3_1-8b.Server.target_qps = 2\n")
    result = run_harness("--scenario", "Server", "--mode", "AccuracyOnly", "--workers", ",".join(real_workers),
                         "--dataset", real_dataset, "--total-sample-count", 6, "--user-conf", conf,
                         "--output", tmp_path / "runs", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    path = only_run_dir(tmp_path / "runs") / "mlperf_log_accuracy.json"
    log = json.loads(path.read_text())
    assert len(log) == 6
    for entry in log:
        data, first = _tokens(entry), _tokens(entry, "token_data")
        assert first and data[:len(first)] == first
        assert entry["token_count"] == len(data)
    assert any(_tokens(e)[-1] in EOS and len(_tokens(e)) < MAX_NEW for e in log)
    verdict = verify_test06(path, "Server", EOS)
    assert verdict.passed and verdict.first_token is True, verdict.problems

    def doctored(change) -> object:
        entries = json.loads(path.read_text())
        change(entries[0])
        out = tmp_path / f"doctored-{len(list(tmp_path.glob('doctored-*')))}.json"
        out.write_text(json.dumps(entries))
        return verify_test06(out, "Server", EOS)

    def hexed(ids) -> str:
        return np.asarray(ids, "<i4").tobytes().hex().upper()

    def first_not_prefix(entry):
        entry["token_data"] = hexed([_tokens(entry)[0] + 1])

    def two_trailing_eos(entry):
        ids = _tokens(entry)
        ids = (ids if ids[-1] in EOS else ids + [EOS[0]]) + [EOS[0]]
        entry["data"], entry["token_count"] = hexed(ids), len(ids)

    def count_mismatch(entry):
        entry["token_count"] += 1

    broken = doctored(first_not_prefix)
    assert broken.first_token is False and broken.eos and broken.length and not broken.passed
    broken = doctored(two_trailing_eos)
    assert broken.eos is False and broken.first_token and broken.length and not broken.passed
    assert "2 trailing EOS tokens" in broken.problems[0]
    broken = doctored(count_mismatch)
    assert broken.length is False and broken.first_token and broken.eos and not broken.passed
