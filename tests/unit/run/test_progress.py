from harness.run.progress import render


def snapshot(**overrides):
    base = {"elapsed_s": 10.0, "output_tokens": 1000, "completed": 5, "issued": 8, "reissued": 0,
            "wasted_output_tokens": 0, "wasted_fraction": 0.0, "requests_run_more_than_once": 0,
            "workers": [{"name": "w0", "state": "ready", "completed": 5, "in_flight": 3, "failures": 0,
                         "reissued": 0}]}
    base.update(overrides)
    return base


def test_the_progress_line_shows_waste_only_when_there_is_some():
    assert "wasted" not in render(snapshot(), "Offline")
    line = render(snapshot(wasted_output_tokens=1280, wasted_fraction=0.128, requests_run_more_than_once=10), "Offline")
    assert "wasted 1,280 tok (12.8 %, 10 run twice)" in line and "100 tok/s" in line
