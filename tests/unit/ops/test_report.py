"""Reports from RunRecords and files made here: trend and regressions, deltas, the page's content,
bad inputs as one line."""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest

from harness.ops.report.command import main
from harness.ops.report.data import Latencies, ReportError, RunData, read_latencies, read_timeline, throughput_series
from harness.ops.report.markdown import render_markdown
from harness.ops.report.page import render
from harness.ops.report.summary import BY_KEY
from harness.ops.report.trend import regressions, trend_figure
from harness.ops.run_record import Metrics, RunRecord, WorkerRecord

START = dt.datetime(2026, 11, 1, 19, tzinfo=dt.timezone.utc)


def record(i: int, tokens_per_s: float, ttft_p99: float | None = 900.0, verdict: str = "VALID") -> RunRecord:
    return RunRecord(run_id=f"run-{i}", run_dir=f"/runs/run-{i}", started_at=START + dt.timedelta(days=i),
                     scenario="Server", mode="PerformanceOnly", model_name="llama3_1-8b", verdict=verdict,
                     accepted=verdict == "VALID", reasons=[] if verdict == "VALID" else ["early stopping not met"],
                     metrics=Metrics(tokens_per_s=tokens_per_s, ttft_p99_ms=ttft_p99, tpot_p99_ms=40.0),
                     workers=[WorkerRecord(address="h:1", name="w0", samples=10, output_tokens=1000, tokens_per_s=50.0),
                              WorkerRecord(address="h:2", name="w1", samples=4, output_tokens=400, tokens_per_s=20.0,
                                           failures=2, reissued=1)])


def test_a_planted_drop_is_a_regression_and_noise_is_not():
    history = [record(i, v) for i, v in enumerate([1000, 1010, 990, 1005, 960, 800])]
    flags = regressions(history, BY_KEY["tokens_per_s"], threshold=0.05, window=10)
    assert flags == [False, False, False, False, False, True]
    latency = [record(i, 1000, ttft_p99=v) for i, v in enumerate([900, 910, 1200])]
    assert regressions(latency, BY_KEY["ttft_p99_ms"], 0.1, 10) == [False, False, True]
    fig = trend_figure(history, "tokens_per_s", 0.05)
    names = [trace.name for trace in fig.data]
    assert "regression threshold (5%)" in names and "regression" in names
    threshold = next(t for t in fig.data if t.name.startswith("regression threshold"))
    assert threshold.y[-1] == pytest.approx(1000 * 0.95)  # median of the five before, less 5 %
    assert trend_figure(history[:1], "tokens_per_s", 0.05) is None


def _run(i: int, tokens_per_s: float) -> RunData:
    rng = np.random.default_rng(i)
    issued = np.sort(rng.uniform(0, 10, 50))
    first = issued + rng.uniform(0.05, 0.5, 50)
    done = first + 0.03 * 99
    return RunData(record(i, tokens_per_s), ttft_limit_ms=2000.0, tpot_limit_ms=100.0,
                   latencies=Latencies(issued, first, done, np.full(50, 100.0)))


def test_one_run_page_is_self_contained_with_its_charts_and_verdict():
    run = _run(1, 1000.0)
    run.record.verdict, run.record.accepted, run.record.reasons = "INVALID", False, ["TTFT constrain not met"]
    html = render([run])
    assert html.count('class="chart"') == 4  # throughput, TTFT, TPOT, per-worker
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing fetched: all inline
    assert "limit 2,000 ms" in html and "TTFT constrain not met" in html and 'class="verdict bad"' in html
    assert "w1" in html and "Trend" not in html


def test_side_by_side_deltas_and_markdown():
    runs = [_run(1, 1000.0), _run(2, 900.0)]
    html = render(runs)
    assert "Side by side" in html and "-10.0 %" in html and 'class="worse"' in html
    md = render_markdown(runs)
    assert "| output tokens/s | 1,000.00 | 900.00 -10.0 % |" in md
    assert "| w1 | 4 | 400 | 20.0 | 2 | 1 |" in md
    trend_md = render_markdown(runs[-1:], [r.record for r in runs] + [record(3, 500.0)], 0.05)
    assert "output tokens/s: REGRESSION in run-2, run-3" in trend_md


def test_throughput_bins_completed_tokens_per_second():
    run = RunData(record(1, 0), latencies=Latencies(np.zeros(4), np.full(4, np.nan), np.array([0.5, 0.6, 1.5, 3.2]),
                                                    np.array([10.0, 20, 30, 40])))
    t, tps = throughput_series(run)
    assert list(t) == [1, 2, 3, 4] and list(tps) == [30, 30, 0, 40]


def test_bad_files_are_one_line_naming_file_and_line(tmp_path):
    bad = tmp_path / "latencies.csv"
    bad.write_text("issued_s,first_token_s,done_s,tokens\n0.1,,0.5,3\n0.2,x,0.6,3\n")
    with pytest.raises(ReportError, match=r"latencies.csv: line 3: not a number"):
        read_latencies(bad)
    bad.write_text("a,b\n")
    with pytest.raises(ReportError, match=r"latencies.csv: line 1: expected the header"):
        read_latencies(bad)
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text('{"t_s": 1, "completed": 1, "output_tokens": 5}\n{"t_s": 2, "compl')  # cut by a kill
    assert len(read_timeline(timeline)) == 1
    timeline.write_text('oops\n{"t_s": 1, "completed": 1, "output_tokens": 5}\n')
    with pytest.raises(ReportError, match=r"timeline.jsonl: line 1: not a timeline point"):
        read_timeline(timeline)


def test_command_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "missing: not a directory" in err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["--threshold", "2", str(tmp_path)]) == 2


def _run_dir(parent, name: str, day: int, tokens_per_s: float, scenario: str = "Server"):
    import json
    run = parent / name
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "status": "done", "scenario": scenario, "mode": "PerformanceOnly", "model_name": "llama3_1-8b",
        "validity": "VALID", "accepted": True, "num_errors": 0, "system_name": "rig",
        "started_at": (START + dt.timedelta(days=day)).isoformat()}))
    lines = [{"key": "result_validity", "value": "VALID"}, {"key": "result_completed_tokens_per_second",
                                                            "value": tokens_per_s}, {"key": "power_end", "value": 0}]
    (run / "mlperf_log_detail.txt").write_text("".join(f":::MLLOG {json.dumps(line)}\n" for line in lines))
    return run


def test_trend_from_run_dirs_flags_the_planted_drop_and_leaves_out_unlike_runs(tmp_path, capsys):
    dirs = [_run_dir(tmp_path, f"n{i}", i, v) for i, v in enumerate([1000, 1010, 995, 700])]
    dirs.append(_run_dir(tmp_path, "offline", 1, 5000, scenario="Offline"))
    out = tmp_path / "trend" / "report.html"
    assert main(["--trend", *map(str, dirs), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "the trend leaves out" in err and "offline" in err
    md = (tmp_path / "trend" / "report.md").read_text()
    assert "Trend over 4 runs" in md and "output tokens/s: REGRESSION in n3" in md
    html = out.read_text()
    assert "regression threshold (5%)" in html and "## n3" in md


def test_last_n_draws_the_trend_from_the_history_store(tmp_path, capsys):
    from harness.ops.run_record import read_run_record
    from harness.ops.store import HistoryStore
    runs = tmp_path / "runs"
    runs.mkdir()
    dirs = [_run_dir(runs, f"n{i}", i, v) for i, v in enumerate([1000, 1010, 995, 1005, 700])]
    dirs.append(_run_dir(runs, "offline", 2, 5000, scenario="Offline"))
    with HistoryStore(f"sqlite:///{runs / 'history.sqlite'}") as store:
        for run in dirs:
            store.add(read_run_record(run))
    out = tmp_path / "nightly.html"
    assert main(["--last", "4", "--scenario", "Server", "--output", str(runs), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "Trend over 4 runs" in md and "REGRESSION in n4" in md and "offline" not in md
    assert main(["--last", "3", "--output", str(tmp_path / "gone"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("gone does not exist")
    (tmp_path / "empty").mkdir()
    assert main(["--last", "3", "--output", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: --last: the history store holds no run"
    assert main(["--out", str(out)]) == 2
