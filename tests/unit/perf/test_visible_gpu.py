from harness.perf.vllm_compare import visible_gpu


def test_a_child_gets_the_physical_gpu_of_its_parent(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [visible_gpu(0), visible_gpu(1)] == ["2", "3"]


def test_without_a_restriction_the_index_is_the_gpu(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_gpu(1) == "1"
