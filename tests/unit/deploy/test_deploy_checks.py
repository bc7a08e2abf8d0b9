"""What `cluster up` refuses on a host before starting anything, from the host's own answers."""
from __future__ import annotations

from harness.deploy.bringup import Cluster
from harness.deploy.config import ClusterConfig
from harness.deploy.remote import Host, shell_path
from sut.security import LinkSecurity


def cluster(engine="vllm", gpus=(0, 1)) -> Cluster:
    config = ClusterConfig.model_validate({"name": "jw", "engine": engine, "model": "/m", "bind": "127.0.0.1",
                                           "hosts": [{"address": "jw2", "gpus": list(gpus)}]})
    return Cluster(config, "c.yaml", LinkSecurity())


def found(**overrides) -> dict:
    answer = {"python": "/venv/bin/python", "sut": True, "running": [], "in_use": [], "missing_files": [],
              "gpus": [0, 1, 2, 3], "gpu_error": None}
    answer.update(overrides)
    return answer


def problems(c: Cluster, answer: dict) -> list[str]:
    return c._preflight_problems(Host(c.config.hosts[0], "c.yaml"), c.plans, answer)


def test_a_healthy_host_passes():
    assert problems(cluster(), found()) == []


def test_each_fault_is_named():
    assert problems(cluster(gpus=(0, 5, 7)), found()) == ["GPU 5, 7 does not exist (the host has 0, 1, 2, 3)"]
    assert problems(cluster(), found(gpus=None, gpu_error="nvidia-smi: No such file or directory")) == [
        "cannot list the host's GPUs for engine vllm (nvidia-smi: No such file or directory)"]
    assert problems(cluster(engine="sim"), found(gpus=None, gpu_error="nvidia-smi: not found")) == []
    assert problems(cluster(), found(in_use=[50052])) == ["port 50052 in use on jw2"]
    assert "cannot import sut.worker" in problems(cluster(), found(sut=False))[0]
    assert "still running (jw2-gpu0); run python -m harness cluster down first" in problems(
        cluster(), found(running=["jw2-gpu0"]))[0]
    assert problems(cluster(), found(missing_files=["/etc/mlperf/token"])) == [
        "cannot read /etc/mlperf/token on the host (security.worker_*)"]


def test_remote_paths_keep_the_home_of_the_remote_user():
    assert shell_path("~/venv/bin/python") == '"$HOME"/venv/bin/python'
    assert shell_path("/opt/my venv/python") == "'/opt/my venv/python'"
