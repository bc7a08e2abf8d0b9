import json

from harness.perf import vllm_compare as vc


def test_dummy_weights_by_default():
    args = vc.parse([])
    assert vc.engine_kwargs(args)["load_format"] == "dummy"
    assert vc.worker_flags(args)[:2] == ["--load-format", "dummy"]


def test_a_real_model_loads_its_weights_in_the_dtype_asked(tmp_path):
    records = [{"input": str(i), "tok_input": [1, i + 2], "output": ""} for i in range(3)]
    dataset = tmp_path / "eval.json"
    dataset.write_text(json.dumps(records))
    args = vc.parse(["--real-model", "--dtype", "bfloat16", "--dataset", str(dataset), "--prompts", "7"])
    kwargs = vc.engine_kwargs(args)
    assert "load_format" not in kwargs and "skip_tokenizer_init" not in kwargs and kwargs["dtype"] == "bfloat16"
    assert "dummy" not in vc.worker_flags(args) and "bfloat16" in vc.worker_flags(args)
    timed = vc.benchmark_records(args)
    assert [r["tok_input"][1] for r in timed] == [2, 3, 4, 2, 3, 4, 2]
    assert len(vc.benchmark_records(args, warmup=True)) == 64
