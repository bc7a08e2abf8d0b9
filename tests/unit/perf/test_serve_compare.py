"""serve_compare without a GPU: the vllm serve command, the endpoint it is driven through, starting
and probing a server process (a stub as the process), and the arithmetic and stamp of the result."""
from __future__ import annotations

import json
import sys
import types

import pytest

from harness.perf import serve_compare as sc
from sut.openai_api.options import parse_endpoint


def args(**overrides):
    base = dict(model="m", prompts=10, seed=0, server_qps=5.0, server_requests=8, max_num_seqs=64,
                max_num_batched_tokens=4096, gpu_memory_utilization=0.8, quantization=None, kv_cache_dtype=None,
                enable_prefix_caching=False, http_max_concurrency=None, tokenizer=None, server_args="", commit="abc1234",
                out=None)
    base.update(overrides)
    return types.SimpleNamespace(**base)


def test_server_command_matches_the_workers_engine_settings():
    command = sc.server_command(args(), 8000)
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(command[3::1], command[4::1]))
    assert flags["--load-format"] == "dummy" and flags["--max-num-seqs"] == "64" and flags["--port"] == "8000"
    assert "--skip-tokenizer-init" in command and "--no-enable-prefix-caching" in command
    with_tokenizer = sc.server_command(args(tokenizer="/tok", server_args="--enforce-eager"), 8000)
    assert "--skip-tokenizer-init" not in with_tokenizer and with_tokenizer[-1] == "--enforce-eager"
    assert with_tokenizer[with_tokenizer.index("--tokenizer") + 1] == "/tok"


def test_endpoint_insists_on_token_ids():
    options = parse_endpoint(sc.endpoint(8000, 512))
    assert options.prompt == "ids" and options.max_concurrency == 512 and options.model == sc.SERVED_NAME


def test_server_process_is_waited_for_probed_and_stopped(tmp_path):
    port = sc.free_port()
    command = [sys.executable, "-m", "tests.openai_stub", str(port), sc.SERVED_NAME]
    server = sc.VllmServer(command, port, tmp_path / "log")
    try:
        server.wait_ready(60)
        assert len(server.probe()["token_ids"]) == 4
    finally:
        server.stop()
    assert server.proc.returncode is not None


def test_a_server_that_dies_is_reported_with_its_log(tmp_path):
    server = sc.VllmServer([sys.executable, "-c", "print('CUDA error: no device'); raise SystemExit(1)"], 1,
                           tmp_path / "log")
    with pytest.raises(RuntimeError, match="exited with 1: CUDA error: no device"):
        server.wait_ready(30)
    server.stop()


def test_main_stamps_and_compares(monkeypatch, tmp_path):
    class FakeServer:
        def __init__(self, command, port, log):
            self.port = port

        def wait_ready(self):
            pass

        def probe(self):
            return {}

        def stop(self):
            pass

    def fake_run(addresses, dataset, samples, scenario, workdir, extra=(), qps=None):
        http = addresses[0].startswith("openai+http")
        if scenario == "Offline":
            return {"tokens_per_s": 990.0 if http else 1000.0}
        return {"tokens_per_s": 1.0, "ttft_p50_ms": 52.0 if http else 50.0, "tpot_p50_ms": 10.0}

    monkeypatch.setattr(sc, "VllmServer", FakeServer)
    monkeypatch.setattr(sc.vc, "run_harness", fake_run)
    monkeypatch.setattr(sc.vc, "start_workers", lambda *a, **k: [types.SimpleNamespace(address="127.0.0.1:1",
                                                                                      stop=lambda: None)])
    monkeypatch.setattr("torch.cuda.get_device_name", lambda index: "NVIDIA H100 80GB HBM3")
    assert sc.main(["--prompts", "10", "--commit", "abc1234def", "--out", str(tmp_path)]) == 0
    [path] = tmp_path.glob("serve-compare-h100-80gb-hbm3-abc1234.json")
    result = json.loads(path.read_text())
    assert result["summary"]["offline_ratio_http_to_grpc"] == pytest.approx(0.99)
    assert result["summary"]["server_added_ttft_p50_ms"] == pytest.approx(2.0)
    assert result["commit"] == "abc1234def" and result["gpu"] == "NVIDIA H100 80GB HBM3"
    assert result["command"].startswith("python -m harness.perf.serve_compare --prompts 10")


def test_the_grpc_worker_flags_build_from_this_parser():
    from harness.perf import vllm_compare
    args = sc.build_parser().parse_args(["--max-num-seqs", "64"])
    flags = vllm_compare.worker_flags(args)
    assert flags[:2] == ["--load-format", "dummy"] and "64" in flags and "--dtype" not in flags
