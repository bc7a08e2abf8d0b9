"""The GPU suite's arithmetic and stamping, with the engine parts replaced (no GPU here)."""
from __future__ import annotations

import types

from harness.perf import gpu_suite


class FakeChild:
    def __init__(self, part, argv, extra=(), env=None):
        self.share = extra[-1]
        self.slow = "--max-num-seqs" in argv and argv[argv.index("--max-num-seqs") + 1] == "32"

    def result(self, log):
        return {"output_tokens": 1000, "seconds": 2.0 if self.slow else 1.0}


def fake_harness(tokens_per_s):
    def run(addresses, dataset, samples, scenario, workdir, extra=(), qps=None):
        return {"tokens_per_s": tokens_per_s(addresses), "dispatch": {"wasted_fraction": 0.002}}
    return run


def args(**overrides):
    base = dict(model="m", prompts=100, unequal_prompts=100, seed=0, engine_flags=[], unequal_args="--max-num-seqs 32")
    base.update(overrides)
    return types.SimpleNamespace(**base)


def test_scaling_compares_n_workers_with_one_and_with_static_shares(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_suite.vc, "start_child", FakeChild)
    monkeypatch.setattr(gpu_suite.vc, "start_workers", lambda *a, **k: [types.SimpleNamespace(address=f"w{i}",
                                                                                               stop=lambda: None)
                                                                         for i in range(2)])
    monkeypatch.setattr(gpu_suite.vc, "run_harness", fake_harness(lambda addresses: 1000.0 * len(addresses) * 0.99))
    r = gpu_suite.part_scaling(args(), [0, 1], tmp_path, open(tmp_path / "log", "w"))
    assert abs(r["summary"]["ratio_all_to_one"] - 2.0) < 1e-9
    assert abs(r["summary"]["ratio_to_static"] - 0.99) < 1e-9  # static: 2000 tokens in 1 s
    assert r["summary"]["waste_fraction"] == 0.002


def test_unequal_compares_with_the_solo_sum_and_static_halves(monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_suite.vc, "start_child", FakeChild)
    monkeypatch.setattr(gpu_suite.vc, "start_workers", lambda *a, **k: [types.SimpleNamespace(address=f"w{i}",
                                                                                               stop=lambda: None)
                                                                         for i in range(2)])
    rates = {("w0",): 1000.0, ("w1",): 500.0, ("w0", "w1"): 1450.0}
    monkeypatch.setattr(gpu_suite.vc, "run_harness", fake_harness(lambda addresses: rates[tuple(addresses)]))
    r = gpu_suite.part_unequal(args(), tmp_path, open(tmp_path / "log", "w"))
    s = r["summary"]
    assert abs(s["ratio_to_solo_sum"] - 1450 / 1500) < 1e-9 and abs(s["speed_ratio"] - 2.0) < 1e-9
    assert abs(s["ratio_to_static"] - 1450 / 1000) < 1e-9  # static halves: 2000 tokens, the slow half in 2 s
