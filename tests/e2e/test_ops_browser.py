"""The live status page and the HTML report, opened in a real browser (Playwright + Debian's
chromium) on a real run: sim workers, real LoadGen, real HTTP. Screenshots land in the test's
tmp folder (status-page.png, report.png, report-compare.png)."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from helpers import REPO, manifest_of, only_run_dir, run_harness
from harness.ops.report.data import read_latencies
from harness.run.settings import short_run_user_conf

SIM = "--step-ms 20 --max-seqs 8 --prefill-tps 100000"


class LiveRun:
    def __init__(self, work: pathlib.Path, dataset: pathlib.Path):
        self.work = work
        conf = work / "user.conf"
        conf.write_text(short_run_user_conf("llama3_1-8b", 32) + "llama3_1-8b.Server.target_qps = 10\n")
        self.output = work / "runs"
        self.stdout = open(work / "stdout.txt", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "harness", "--quiet", "--scenario", "Server", "--local-engine", "sim", "--model",
             "sim", "--local-worker-args", SIM, "--dataset", str(dataset), "--user-conf", str(conf), "--output",
             str(self.output), "--allow-invalid", "--status-port", "0"],
            cwd=work, stdout=self.stdout, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        self.stderr = []
        for line in self.process.stderr:
            self.stderr.append(line)
            if line.startswith("status page: "):
                self.url = line.split(": ", 1)[1].strip()
                break
        else:
            raise AssertionError("no status page line: " + "".join(self.stderr))

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return response.read().decode()

    def finish(self) -> pathlib.Path:
        if self.process.returncode is None:
            _, err = self.process.communicate(timeout=120)
            self.stderr.append(err)
            self.stdout.close()
        assert self.process.returncode == 0, "".join(self.stderr)
        return only_run_dir(self.output)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, tiny_dataset):
    run = LiveRun(tmp_path_factory.mktemp("live"), tiny_dataset)
    yield run
    if run.process.poll() is None:
        run.process.kill()
        run.process.wait()


def _number(text: str) -> float:
    return float(re.sub(r"[^0-9.]", "", text.split("/")[0]))


def test_status_page_shows_the_run_live(live_run, chromium, tmp_path):
    page = chromium.new_page(viewport={"width": 1200, "height": 800})
    page.goto(live_run.url)
    page.wait_for_function("document.getElementById('state').textContent === 'running'"
                           " && Number(document.body.dataset.updates || 0) >= 1", timeout=30_000)
    first = _number(page.inner_text("#samples"))
    page.wait_for_function(f"parseFloat(document.getElementById('samples').textContent.replace(/,/g, '')) > {first}",
                           timeout=30_000)  # updates while the run goes, without a reload
    assert page.inner_text("#state") == "running"
    assert page.locator("#workers tbody tr").count() == 2
    page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)

    figures = json.loads(live_run.get("status.json"))
    assert figures["scenario"] == "Server" and figures["ttft_ms"]["limit_p99"] == 2000.0
    metrics = live_run.get("metrics")
    run_label = f'run="{figures["run"]}",scenario="Server"'
    assert f"mlperf_run_ttft_p99_limit_seconds{{{run_label}}} 2.0" in metrics
    assert f"mlperf_run_tpot_p99_limit_seconds{{{run_label}}} 0.1" in metrics
    assert metrics.count("mlperf_run_worker_up{") == 2 and "mlperf_run_tokens_per_second{" in metrics

    page.wait_for_function("document.getElementById('state').textContent === 'done'", timeout=60_000)
    page.screenshot(path=str(tmp_path / "status-page-done.png"), full_page=True)
    shown = {key: page.inner_text(f"#{key}") for key in ("samples", "output_tokens", "failed_attempts", "reissued")}
    ttft_p99 = _number(page.inner_text("#ttft .p99"))
    run_dir = live_run.finish()
    dispatch = manifest_of(run_dir)["dispatch"]
    assert _number(shown["samples"]) == dispatch["completed"] == dispatch["issued"]
    assert _number(shown["output_tokens"]) == dispatch["output_tokens"]
    assert _number(shown["failed_attempts"]) == dispatch["failed_attempts"]
    assert _number(shown["reissued"]) == dispatch["reissued"]
    latencies = read_latencies(run_dir / "latencies.csv")
    assert len(latencies.done) == dispatch["completed"]
    assert ttft_p99 == pytest.approx(np.percentile(latencies.ttft_ms, 99), abs=0.06)
    loadgen = float(re.search(r"99.00 percentile first token latency \(ns\)\s*: (\d+)",
                              (run_dir / "mlperf_log_summary.txt").read_text()).group(1)) / 1e6
    assert ttft_p99 == pytest.approx(loadgen, rel=0.25)  # the coordinator's view of LoadGen's number
    status_md = (run_dir / "live_status.md").read_text()
    assert "**done**" in status_md and f"{dispatch['completed']}/" in status_md
    assert len((run_dir / "timeline.jsonl").read_text().splitlines()) >= 3


def _open_offline(chromium, html: pathlib.Path, shot: pathlib.Path) -> tuple:
    """Open with the network off: an offline context, and every request but the file itself aborted."""
    context = chromium.new_context(offline=True, viewport={"width": 1280, "height": 900})
    requested = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            return route.continue_()
        requested.append(route.request.url)
        return route.abort()
    context.route("**/*", only_files)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(html.resolve().as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    page.screenshot(path=str(shot), full_page=True)
    return context, page, requested, errors


def test_report_renders_its_plots_offline(live_run, chromium, tmp_path):
    run_dir = live_run.finish()
    result = run_harness("report", run_dir, "--out", tmp_path / "report.html", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    context, page, requested, errors = _open_offline(chromium, tmp_path / "report.html", tmp_path / "report.png")
    try:
        assert requested == [] and errors == []
        plots = page.locator(".js-plotly-plot")
        assert plots.count() == 4  # throughput, TTFT, TPOT, per-worker
        for i in range(4):
            assert plots.nth(i).locator(".main-svg g.trace path").count() >= 1, f"plot {i} drew nothing"
        manifest = manifest_of(run_dir)
        assert manifest["validity"] in page.inner_text(".verdict")
        assert page.locator("#workers tr").count() == 3
        assert "limit 2,000 ms" in page.inner_text("body")
    finally:
        context.close()
    summary = (tmp_path / "report.md").read_text()
    assert f"**Verdict: {manifest['validity']}" in summary and "| local-0 |" in summary


def test_comparison_report_shows_deltas(live_run, chromium, tmp_path, tiny_dataset):
    server_run = live_run.finish()
    conf = tmp_path / "user.conf"
    conf.write_text(short_run_user_conf("llama3_1-8b", 32))
    offline = run_harness("--scenario", "Offline", "--local-engine", "sim", "--model", "sim", "--local-worker-args",
                          "--step-ms 2 --max-seqs 16", "--dataset", tiny_dataset, "--user-conf", conf,
                          "--output", tmp_path / "runs", cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    offline_run = only_run_dir(tmp_path / "runs")
    out = tmp_path / "compare" / "report.html"
    result = run_harness("report", server_run, offline_run, "--out", out, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    context, page, requested, errors = _open_offline(chromium, out, tmp_path / "report-compare.png")
    try:
        assert requested == [] and errors == []
        table = page.inner_text("#comparison")
        assert server_run.name in table and offline_run.name in table
        assert re.search(r"[+-]\d+\.\d %", table), table
        assert page.locator(".js-plotly-plot").count() >= 7
    finally:
        context.close()
