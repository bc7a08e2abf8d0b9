"""The campaign's live status: the time left from the plan, the figures from the state as saved, the
gauges, a run's status server followed over real HTTP (RemoteStatus) and mounted under /run/, and
the flags' one-line errors. The whole page on a real campaign is tests/e2e/test_campaign_status.py."""
from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest
from prometheus_client import generate_latest
from rich.console import Console

from harness.campaign import command
from harness.campaign.config import validate
from harness.campaign.plan import Decision, Step
from harness.campaign.status import CampaignStatus, estimate_left, serve
from harness.campaign.status_metrics import registry_for_campaign
from harness.run.status.live import LiveStatus, RunFacts
from harness.run.status.recorder import RunRecorder
from harness.run.status.remote import RemoteStatus
from harness.run.status.server import StatusServer

OFFLINE, SERVER, SERVER2, PACKAGE = (Step("performance", "Offline"), Step("performance", "Server"),
                                     Step("performance", "Server", 2), Step("package"))


def plan(*actions: str, records: dict | None = None) -> list[Decision]:
    records = records or {}
    return [Decision(step, action, record=records.get(step.id, {}))
            for step, action in zip((OFFLINE, SERVER, SERVER2, PACKAGE), actions)]


def test_time_left_comes_from_finished_steps_of_the_same_kind_then_the_running_runs_own_estimate():
    decisions = plan("run", "run", "run", "run")
    assert estimate_left(decisions, {}, set(), "performance/Offline", 3.0, None) == (None, 4)
    records = {"performance/Offline": {"status": "passed", "duration_s": 20.0}}
    # Server steps: the mean of the kind (20 s); package: no step of its kind finished yet
    assert estimate_left(decisions, records, {"performance/Offline"}, None, 0.0, None) == (40.0, 1)
    records["performance/Server"] = {"status": "invalid", "duration_s": 30.0}
    # Server#2 is estimated from the same scenario (30 s), and 12 s of it ran already
    assert estimate_left(decisions, records, {"performance/Offline", "performance/Server"},
                         "performance/Server#2", 12.0, None) == (18.0, 1)
    # the run says its test needs longer than that: the longer one counts
    assert estimate_left(decisions, records, {"performance/Offline", "performance/Server"},
                         "performance/Server#2", 12.0, 25.0) == (25.0, 1)


def test_a_kept_step_costs_nothing_and_a_rerun_step_is_estimated_by_its_own_last_duration():
    earlier = {"performance/Server": {"status": "failed", "duration_s": 7.5}}
    decisions = plan("keep", "run", "keep", "keep", records=earlier)
    assert estimate_left(decisions, {}, set(), None, 0.0, None) == (7.5, 0)
    assert estimate_left(decisions, {}, {"performance/Server"}, None, 0.0, None) == (0.0, 0)


@pytest.fixture
def scripted(tmp_path, monkeypatch):
    """A campaign whose step kinds are test doubles (tests/unit/campaign/test_campaign_flow.py's)."""
    from test_campaign_flow import ScriptedKind
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps([{"input": "a", "tok_input": [1, 2, 3], "output": "b"}] * 3))
    config = validate({"scenarios": ["Offline", "Server"], "steps": ["performance", "package"],
                       "output": str(tmp_path / "out"), "organisation": "Acme", "dataset": str(dataset),
                       "tokenizer": str(tmp_path), "system": {"system_name": "s"},
                       "workers": {"addresses": ["127.0.0.1:1"]}, "loadgen": {"target_qps": {"Server": 1.0}}},
                      "nightly.toml")
    monkeypatch.setattr(command.CampaignWorkers, "start", lambda self: ["127.0.0.1:1"])
    calls: list[str] = []
    kind = ScriptedKind({"performance/Server": "failed"}, calls)
    monkeypatch.setattr(command, "KINDS", {k: kind for k in ("performance", "package")})
    return config


def test_the_figures_follow_the_state_file_to_the_end(scripted, tmp_path):
    campaign = command.Campaign(scripted, "nightly.toml", "text", Console(file=open(tmp_path / "c.txt", "w")),
                                ("127.0.0.1", 0))
    assert campaign.run(False) == 1
    state = json.loads((tmp_path / "out" / "campaign-state.json").read_text())["steps"]
    f = campaign.live.figures()
    assert f["campaign"] == "nightly" and f["state"] == "done" and f["exit_code"] == 1 and f["running"] is None
    assert [(s["id"], s["status"], s["duration_s"], s["run_dir"]) for s in f["steps"]] == \
        [(i, r["status"], r["duration_s"], r["run_dir"]) for i, r in state.items()]
    assert f["counts"] == {"passed": 1, "failed": 1, "blocked": 1}
    assert f["finished_now"] == 3 == f["to_run"]  # the blocked package counts as done: nothing left to wait for
    assert f["eta_s"] == 0.0 and f["eta_unknown_steps"] == 0
    metrics = generate_latest(registry_for_campaign(campaign.live)).decode()
    assert 'mlperf_campaign_steps{campaign="nightly",status="blocked"} 1.0' in metrics
    assert 'mlperf_campaign_step_status{campaign="nightly",status="failed",step="performance/Server"} 1.0' in metrics
    assert 'mlperf_campaign_running{campaign="nightly"} 0.0' in metrics
    assert "mlperf_run_" not in metrics  # no run is followed: no run gauges


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_a_runs_status_server_is_followed_and_served_under_run(tmp_path):
    snaps = [{"elapsed_s": 2.0, "issued": 8, "completed": 6, "output_tokens": 60, "workers": []}]
    run = LiveStatus(RunFacts("r1", "Offline", "PerformanceOnly", "llama3_1-8b", expected_samples=8),
                     lambda: snaps[-1], RunRecorder(), None, interval_s=0.05)
    status = CampaignStatus("c", tmp_path, plan("run"), interval_s=0.05)
    with StatusServer(run, 0) as run_server, serve(status, 0, "127.0.0.1", None) as server:
        run.__enter__()
        status.run.follow(run_server.url)
        deadline = time.monotonic() + 10
        while (status.run.figures() or {}).get("completed") != 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(_get(server.url + "run/status.json"))["run"] == "r1"
        assert "EventSource" in _get(server.url + "run/") and "Campaign" in _get(server.url)
        assert 'mlperf_run_completed{run="r1",scenario="Offline"} 6.0' in _get(server.url + "metrics")
        snaps.append({**snaps[0], "completed": 8})
        run.finish("done")
        deadline = time.monotonic() + 10
        while (status.run.figures() or {}).get("state") != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status.run.figures()["state"] == "done" and status.run.figures()["completed"] == 8  # the final figures
        status.run.follow(None)  # the next step: the last run's numbers are not shown under it
        assert status.run.figures() is None and json.loads(_get(server.url + "run/status.json")) is None
        status.finish("done", 0)


def test_a_followed_server_that_asks_for_a_token_gets_it(tmp_path):
    run = LiveStatus(RunFacts("r2", "Server", "PerformanceOnly", "llama3_1-8b"), dict, RunRecorder(), None)
    remote = RemoteStatus(token="s3cret")
    with StatusServer(run, 0, token="s3cret") as server:
        remote.follow(server.url)
        deadline = time.monotonic() + 10
        while remote.figures() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert remote.figures()["run"] == "r2"
        remote.close()
        run.finish("done")


def _config_file(tmp_path, **workers) -> str:
    path = tmp_path / "c.toml"
    dataset = tmp_path / "data.json"
    dataset.write_text(json.dumps([{"input": "a", "tok_input": [1, 2, 3], "output": "b"}] * 3))
    extra = "".join(f'{k} = "{v}"\n' for k, v in workers.items())
    path.write_text(f'scenarios = ["Offline"]\nsteps = ["performance"]\noutput = "{tmp_path / "out"}"\n'
                    f'organisation = "A"\ndataset = "{dataset}"\ntokenizer = "{tmp_path}"\n'
                    f'[workers]\naddresses = ["127.0.0.1:1"]\n{extra}')
    return str(path)


def test_flag_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    config = _config_file(tmp_path)
    assert command.main([config, "--status-port", "0", "--status-host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --status-host 0.0.0.0: a status page reachable from other hosts needs the workers' "
                   f"token (workers.auth_token_file in {config}), or bind it to 127.0.0.1\n")
    assert command.main([config, "--status-port", "70000"]) == 2
    assert capsys.readouterr().err == "error: --status-port 70000: not a port (0 to 65535)\n"
    started = []
    monkeypatch.setattr(command.CampaignWorkers, "start", lambda self: started.append(1) or [])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert command.main([config, "--status-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --status-port {port}: cannot listen on 127.0.0.1:{port}") and err.count("\n") == 1
    assert not started  # before any worker or step


def test_workers_not_reachable_still_end_the_page(scripted, tmp_path, monkeypatch):
    from harness.run.preflight import PreflightError

    def unreachable(self):
        raise PreflightError("127.0.0.1:1: not reachable")
    monkeypatch.setattr(command.CampaignWorkers, "start", unreachable)
    command.KINDS["performance"].subprocess = True  # a run step: the workers are checked first
    campaign = command.Campaign(scripted, "nightly.toml", "text", Console(file=open(tmp_path / "c.txt", "w")),
                                ("127.0.0.1", 0))
    with pytest.raises(PreflightError):
        campaign.run(False)
    assert campaign.live.figures()["state"] == "failed" and campaign.live.closed
