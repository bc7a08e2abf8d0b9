"""A campaign's live status page in a real browser (Playwright + Debian's chromium) on a real campaign:
local sim workers, real LoadGen runs as child processes, real HTTP and server-sent events. The page
follows the campaign step by step, shows the running step's own run page (followed from the child's
status server) updating live, and ends matching `campaign-state.json`. Screenshots in the test's
tmp folder (campaign-status-running.png, campaign-status-done.png)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import urllib.request

import pytest

from helpers import campaign_state, run_campaign

SIM_ARGS = ["--vocab-size", "1024", "--step-ms", "20", "--max-seqs", "8", "--prefill-tps", "1000000"]


def small_campaign(tmp_path: pathlib.Path, dataset, tokenizer) -> pathlib.Path:
    """Two performance steps (Offline, then Server for at least 4 s): the second one's time left is
    estimated from the first."""
    path = tmp_path / "live.toml"
    path.write_text("\n".join([
        'scenarios = ["Offline", "Server"]', 'steps = ["performance"]', f'output = "{tmp_path / "out"}"',
        'organisation = "Acme"', "allow_unofficial = true", f'dataset = "{dataset}"', f'tokenizer = "{tokenizer}"',
        "[workers.local]", 'engine = "sim"', 'model = "sim"', "count = 2", f"args = {json.dumps(SIM_ARGS)}",
        "[loadgen]", "min_duration_ms = 4000", "min_query_count = 16", "offline_target_qps = 10",
        "target_qps = {Server = 10.0}", "[run]", "max_new_tokens = 8", "min_new_tokens = 2"]) + "\n")
    return path


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text.split("/")[0]) or "nan")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_campaign_page_follows_every_step_to_the_end(chromium, tiny_model, tiny_dataset, tmp_path):
    proc = run_campaign(small_campaign(tmp_path, tiny_dataset, tiny_model), "--status-port", "0", popen=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("status page: "):
                url = line.split(": ", 1)[1].strip()
                break
        else:
            raise AssertionError("no status page line: " + "".join(lines) + proc.stderr.read())
        page = chromium.new_page(viewport={"width": 1300, "height": 1400})
        page.goto(url)
        page.wait_for_function("document.getElementById('state').textContent === 'running'", timeout=30_000)
        assert page.locator("#steps tbody tr").count() == 2
        assert page.inner_text("#campaign") == "live"

        # the Server step: its row is marked running, the time left is estimated from the Offline step,
        # and its run's own page (in the frame) moves while it goes
        page.wait_for_function("document.getElementById('running').textContent.startsWith('performance/Server')",
                               timeout=60_000)
        server_row = page.locator('#steps tr[data-step="performance/Server"]')
        assert "running" in server_row.get_attribute("class")
        assert page.inner_text('#steps tr[data-step="performance/Offline"] td.status') in ("passed", "invalid")
        frame = page.frame_locator("#run-frame")
        frame.locator("#state").filter(has_text="running").wait_for(timeout=30_000)
        assert frame.locator("#scenario").inner_text() == "Server"
        first = _number(frame.locator("#samples").inner_text())
        page.wait_for_function(
            "parseFloat(document.getElementById('run-frame').contentDocument.getElementById('samples')"
            f".textContent.replace(/,/g, '')) > {first}", timeout=30_000)
        eta = page.inner_text("#eta")
        assert re.fullmatch(r"[\d,]+ s", eta), eta  # every remaining step has an estimate
        figures = json.loads(_get(url + "status.json"))
        assert figures["running"] == figures["run_step"] == "performance/Server"
        assert figures["run"]["scenario"] == "Server" and figures["eta_unknown_steps"] == 0
        metrics = _get(url + "metrics")
        assert 'mlperf_campaign_step_status{campaign="live",status="running",step="performance/Server"} 1.0' \
            in metrics, metrics
        assert 'mlperf_campaign_step_running_seconds{campaign="live",step="performance/Server"}' in metrics
        assert re.search(r'mlperf_run_completed\{run="[^"]+",scenario="Server"\} \d', metrics), metrics
        assert "mlperf_campaign_eta_seconds{" in metrics
        page.screenshot(path=str(tmp_path / "campaign-status-running.png"), full_page=True)

        page.wait_for_function("document.getElementById('state').textContent === 'done'", timeout=90_000)
        page.screenshot(path=str(tmp_path / "campaign-status-done.png"), full_page=True)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, "".join(lines) + out + err  # short runs: INVALID
    state = campaign_state(tmp_path / "out")
    shown = {}
    for row in page.locator("#steps tbody tr").all():
        cells = {name: row.locator(f"td.{name}").inner_text() for name in ("status", "attempts", "duration", "run_dir")}
        shown[row.get_attribute("data-step")] = cells
    assert set(shown) == set(state["steps"]) == {"performance/Offline", "performance/Server"}
    for step_id, record in state["steps"].items():
        cells = shown[step_id]
        assert cells["status"] == record["status"] and int(cells["attempts"]) == record["attempts"], (cells, record)
        assert _number(cells["duration"]) == pytest.approx(record["duration_s"], abs=0.051), (cells, record)
        assert cells["run_dir"] == os.path.relpath(record["run_dir"], tmp_path / "out"), (cells, record)
        assert (pathlib.Path(record["run_dir"]) / "manifest.json").is_file()
    assert page.inner_text("#running") == "none" and page.inner_text("#eta") == "-"
    assert page.inner_text("#finished") == "2" and page.inner_text("#to_run") == "2"
