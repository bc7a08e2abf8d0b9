"""The live status's parts with a fake clock and a fake snapshot: per-sample times, the figures,
the files in the run directory, the server's auth and /metrics."""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from harness.ops.report.data import read_latencies
from harness.run.status.live import LiveStatus, RunFacts
from harness.run.status.recorder import RecordingResponder, RunRecorder
from harness.run.status.server import StatusServer
from sut.security import SecurityError
from sut.wire import pack_tokens


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Inner:
    def __init__(self):
        self.calls = []

    def first_token(self, query, tokens):
        self.calls.append(("first", query.sample_id))

    def complete(self, items):
        self.calls.append(("complete", [q.sample_id for q, _ in items]))


def worker(name, tokens, completed, state="ready"):
    return {"name": name, "address": f"127.0.0.1:{5000 + int(name[-1])}", "state": state, "in_flight": 1,
            "completed": completed, "output_tokens": tokens, "failures": 0, "reissued": 0, "disconnects": 0,
            "last_error": None}


def recorded(clock: Clock) -> RunRecorder:
    """Two samples issued at t=0: TTFT 0.1 s and 0.3 s; 11 tokens each over 1 s and 2 s after the first."""
    recorder = RunRecorder(clock)
    inner = Inner()
    responder = RecordingResponder(inner, recorder)
    issued = []
    recorder.wrap_issue(issued.append)([SimpleNamespace(id=1, index=0), SimpleNamespace(id=2, index=1)])
    q1, q2 = SimpleNamespace(sample_id=1), SimpleNamespace(sample_id=2)
    clock.t += 0.1
    responder.first_token(q1, pack_tokens([5]))
    clock.t += 0.2
    responder.first_token(q2, pack_tokens([5]))
    clock.t += 0.8
    responder.complete([(q1, pack_tokens(list(range(11))))])
    clock.t += 1.2
    responder.complete([(q2, pack_tokens(list(range(11))))])
    assert len(issued) == 1 and inner.calls[-1] == ("complete", [2])
    return recorder


def test_recorder_measures_ttft_and_tpot_as_loadgen_does_and_writes_them(tmp_path):
    recorder = recorded(Clock())
    ttft, tpot = recorder.latencies()
    assert ttft == pytest.approx([0.1, 0.3]) and tpot == pytest.approx([0.1, 0.2])
    latencies = read_latencies(recorder.write(tmp_path))
    assert list(latencies.ttft_ms) == pytest.approx([100, 300], abs=1e-3)
    assert list(latencies.tpot_ms) == pytest.approx([100, 200], abs=1e-3)
    assert list(latencies.tokens) == [11, 11]


def test_figures_rates_limits_eta_and_files(tmp_path):
    clock = Clock()
    recorder = recorded(clock)
    snaps = [{"elapsed_s": 2.3, "issued": 2, "completed": 1, "output_tokens": 100, "workers": [worker("w0", 100, 1)]}]
    facts = RunFacts(run="r1", scenario="Server", mode="PerformanceOnly", model_name="llama3_1-8b",
                     expected_samples=10, ttft_limit_ms=200.0, tpot_limit_ms=150.0)
    status = LiveStatus(facts, lambda: snaps[-1], recorder, tmp_path)
    status.sample()
    clock.t += 2.0
    snaps.append({"elapsed_s": 4.3, "issued": 4, "completed": 3, "output_tokens": 500, "failed_attempts": 1,
                  "reissued": 1, "workers": [worker("w0", 500, 3)]})
    figures = status.sample()
    assert figures["recent_tokens_per_s"] == pytest.approx(200.0, rel=0.01)  # (500 - 100) / 2 s
    assert figures["workers"][0]["tokens_per_s"] == pytest.approx(200.0, rel=0.01)
    assert figures["expected"] == 10 and figures["progress"] == 0.3
    assert figures["eta_s"] == pytest.approx(7 / 1.0, rel=0.01)  # 7 samples left at 1 sample/s
    assert figures["ttft_ms"]["p99"] == pytest.approx(298, abs=1) and figures["ttft_ms"]["within_limit"] is False
    assert figures["tpot_ms"]["within_limit"] is False and figures["tpot_ms"]["p50"] == pytest.approx(150)
    status.finish("done")
    lines = (tmp_path / "timeline.jsonl").read_text().splitlines()
    assert [json.loads(line)["output_tokens"] for line in lines] == [100, 500, 500]
    markdown = (tmp_path / "live_status.md").read_text()
    assert "**done**" in markdown and "| TTFT |" in markdown and "200.0 ms OVER" in markdown
    assert "| w0 | 127.0.0.1:5000 | ready |" in markdown and "failed attempts 1, re-issued 1" in markdown


def test_a_closed_cluster_keeps_its_last_figures(tmp_path):
    snaps = [{"elapsed_s": 1.0, "issued": 4, "completed": 4, "output_tokens": 40, "workers": []}]
    status = LiveStatus(RunFacts("r", "Offline", "PerformanceOnly", "llama3_1-8b"), lambda: snaps[-1],
                        RunRecorder(Clock()), None)
    status.sample()
    snaps.append({})
    assert status.sample()["completed"] == 4


def _get(url: str, headers: dict | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_server_needs_the_token_off_loopback_and_checks_it(tmp_path):
    status = LiveStatus(RunFacts("r", "Server", "PerformanceOnly", "llama3_1-8b", ttft_limit_ms=2000.0),
                        dict, RunRecorder(Clock()), None)
    with pytest.raises(SecurityError, match="--status-host 0.0.0.0: .*needs --auth-token-file"):
        StatusServer(status, 0, "0.0.0.0")
    with StatusServer(status, 0, "127.0.0.1", token="s3cret") as server:
        assert _get(server.url + "status.json")[0] == 401
        assert _get(server.url + "status.json?token=wrong")[0] == 401
        code, body = _get(server.url + "status.json", {"Authorization": "Bearer s3cret"})
        assert code == 200 and json.loads(body)["scenario"] == "Server"
        code, page = _get(server.url + "?token=s3cret")
        assert code == 200 and "s3cret" not in page and "EventSource" in page
        code, metrics = _get(server.url + "metrics?token=s3cret")
        assert code == 200 and 'mlperf_run_ttft_p99_limit_seconds{run="r",scenario="Server"} 2.0' in metrics
        assert _get(server.url + "nothing?token=s3cret")[0] == 404


def test_a_port_in_use_is_one_line(tmp_path):
    status = LiveStatus(RunFacts("r", "Offline", "PerformanceOnly", "llama3_1-8b"), dict, RunRecorder(Clock()), None)
    with StatusServer(status, 0) as first:
        port = first.httpd.server_address[1]
        with pytest.raises(SecurityError, match=f"--status-port {port}: cannot listen on 127.0.0.1:{port}"):
            StatusServer(status, port)


def test_events_stream_sends_the_figures_and_ends_when_the_status_closes():
    status = LiveStatus(RunFacts("r", "Offline", "PerformanceOnly", "llama3_1-8b"), dict, RunRecorder(Clock()), None)
    with StatusServer(status, 0) as server:
        status.finish("done")
        with urllib.request.urlopen(server.url + "events", timeout=5) as response:
            body = response.read().decode()  # returns: the stream ends once the status is closed
    events = [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]
    assert events and events[-1]["state"] == "done" and not math.isnan(events[-1]["elapsed_s"])


def test_run_flags_status_host_needs_a_token_and_a_busy_port_leaves_no_run(tmp_path, monkeypatch, capsys):
    import socket

    from harness.cli import main
    from harness.run.settings import short_run_user_conf
    monkeypatch.chdir(tmp_path)
    dataset = tmp_path / "cnn_eval.json"
    dataset.write_text(json.dumps([{"input": "a", "tok_input": [1, 5, 7], "output": "s"}] * 8))
    conf = tmp_path / "user.conf"
    conf.write_text(short_run_user_conf("llama3_1-8b", 8))
    base = ["--quiet", "--output", str(tmp_path / "runs"), "--workers", "127.0.0.1:1", "--dataset", str(dataset),
            "--user-conf", str(conf)]
    assert main(base + ["--status-port", "0", "--status-host", "0.0.0.0"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "--status-host 0.0.0.0" in err[0] and "--auth-token-file" in err[0]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(base + ["--status-port", str(port)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and f"--status-port {port}: cannot listen" in err[0]
    assert not any((tmp_path / "runs").iterdir())
