import json

from harness.perf import vllm_compare


def test_a_harness_run_result_keeps_the_end_game_moves(tmp_path, monkeypatch):
    """The benchmark's run directory is temporary, so the result file must carry why work was moved."""
    moves = {"policy": "pull", "moves_recorded": 1, "moves_total": 1,
             "moves": [{"t_s": 9.5, "kind": "hedge", "sample": 7, "from": "a", "to": "b", "why": {"copy_s": 1.0}}]}
    (tmp_path / "manifest.json").write_text(json.dumps({
        "dispatch": {"hedged": 1, "wasted_output_tokens": 3, "workers": [{"name": "a", "hedged_to": 0}]},
        "end_game": moves}))
    monkeypatch.setattr(vllm_compare, "harness_run",
                        lambda *args, **kwargs: (tmp_path, {"result_tokens_per_second": 100.0}))
    result = vllm_compare.run_harness(["w:1"], tmp_path / "d.json", 10, "Offline", tmp_path)
    assert result["end_game"] == moves
    assert result["dispatch"]["hedged"] == 1 and result["tokens_per_s"] == 100.0
