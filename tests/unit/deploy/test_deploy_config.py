"""The cluster file: one line per problem naming file, line and key path; what it plans."""
from __future__ import annotations

import pytest

from harness.deploy.config import load_cluster
from harness.deploy.errors import ClusterFileError
from harness.deploy.plan import link_security, plan_cluster

GOOD_YAML = """\
name: jw
engine: vllm
model: /models/llama
engine_args: {max-num-seqs: 256, enforce-eager: true, kv-cache-dtype: null}
security:
  token_file: token
  worker_token_file: /etc/mlperf/token
hosts:
  - address: jw2
    user: bench
    python: /opt/venv/bin/python
    gpus: [0, 1, 2, 3]
    tensor_parallel: 2
  - address: jw3
    name: third
    gpus: [[4], [6, 7]]
    base_port: 6000
    advertise: jw3.lan
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path) -> list[str]:
    with pytest.raises(ClusterFileError) as caught:
        load_cluster(path)
    return caught.value.problems


def test_a_good_file_plans_one_worker_per_gpu_group(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    config = load_cluster(write(tmp_path, "c.yaml", GOOD_YAML))
    plans = plan_cluster(config)
    assert [(p.host.label, p.gpus, p.port, p.address) for p in plans] == [
        ("jw2", (0, 1), 50051, "jw2:50051"), ("jw2", (2, 3), 50052, "jw2:50052"),
        ("third", (4,), 6000, "jw3.lan:6000"), ("third", (6, 7), 6001, "jw3.lan:6001")]
    first = plans[0].spec
    assert first.env["CUDA_VISIBLE_DEVICES"] == "0,1" and first.worker_id == "jw2:gpu0,1"
    command = first.command()
    assert command[:3] == ["/opt/venv/bin/python", "-m", "sut.worker"]
    assert command[command.index("--tensor-parallel-size") + 1] == "2"
    assert "--tensor-parallel-size" not in plans[2].spec.command()
    assert command[command.index("--max-num-seqs") + 1] == "256" and "--enforce-eager" in command
    assert "--kv-cache-dtype" not in command
    assert command[command.index("--auth-token-file") + 1] == "/etc/mlperf/token"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert plans[2].matches("third:4") and plans[3].matches("third:7") and not plans[3].matches("third:4")
    assert link_security(config, tmp_path / "c.yaml").token == "s3cret"
    assert "s3cret" not in repr(config) + repr(plans)


def test_toml_works_and_names_lines(tmp_path):
    path = write(tmp_path, "c.toml", """\
name = "jw"
engine = "sim"
model = "sim"
bind = "127.0.0.1"

[[hosts]]
address = "a"
gpus = [0]

[[hosts]]
address = "b"
gpus = [0, 1, 2]
tensor_parallel = 2
sshport = 22
""")
    assert problems(path) == [f"{path}: line 14: key hosts[1].sshport: unknown key"]
    path.write_text(path.read_text().replace("sshport = 22\n", ""))
    assert problems(path) == [f"{path}: line 10: key hosts[1]: tensor_parallel 2 must divide the 3 GPUs"]


def test_every_problem_is_one_line_with_its_yaml_line_and_key(tmp_path):
    path = write(tmp_path, "c.yaml", """\
name: jw
engine: tgi
model: sim
bind: 127.0.0.1
retries: 3
engine_args: {temperature: 0.5}
hosts:
  - address: a
    gpus: [0, "x"]
    port: 70000
  - address: b
    gpus: [[0, 1], [1]]
""")
    assert problems(path) == [
        f"{path}: line 2: key engine: Value error, 'tgi' is not one of hf, sim, vllm".replace("Value error, ", ""),
        f"{path}: line 6: key engine_args: 'temperature' changes sampling (not allowed in the closed division)",
        f"{path}: line 10: key hosts[0].port: Input should be less than or equal to 65535",
        f"{path}: line 9: key hosts[0].gpus[1]: Input should be a valid integer, unable to parse string as an integer",
        f"{path}: line 12: key hosts[1].gpus: a GPU is listed twice: [0, 1, 1]",
        f"{path}: line 5: key retries: unknown key"]


@pytest.mark.parametrize("body, expected", [
    ("bind: 0.0.0.0\n", "key (top level): bind '0.0.0.0' is reachable from other hosts"),
    ("bind: 127.0.0.1\nsecurity: {worker_token_file: /t}\n", "line 5: key security: a token needs both sides"),
    ("bind: 127.0.0.1\nsecurity: {worker_tls_cert: /c}\n", "key security: worker_tls_cert and worker_tls_key go"),
    ("bind: 127.0.0.1\nengine_args: {port: 1}\n", "key engine_args: 'port' is set by the cluster file's own keys"),
    ("bind: 127.0.0.1\npreset: missing.json\n", "line 5: key preset: "),
    ("bind: 127.0.0.1\nsecurity: {token_file: nope, worker_token_file: /t}\n", "key security.token_file: "),
])
def test_unsafe_or_missing_settings_are_refused(tmp_path, body, expected):
    path = write(tmp_path, "c.yaml",
                 "name: jw\nengine: sim\nmodel: sim\n" + body + "hosts: [{address: a, gpus: [0]}]\n")
    found = problems(path)
    assert len(found) == 1 and expected in found[0], found


def test_a_preset_of_another_engine_is_refused(tmp_path):
    write(tmp_path, "p.json", '{"format": "mlperf-harness-preset/1", "engine": "vllm", "engine_args": {}}')
    path = write(tmp_path, "c.yaml", "name: jw\nengine: sim\nmodel: sim\nbind: 127.0.0.1\npreset: p.json\n"
                                     "hosts: [{address: a, gpus: [0]}]\n")
    assert problems(path) == [f"{path}: line 5: key preset: its engine is 'vllm', the cluster's 'sim'"]


@pytest.mark.parametrize("name, text, expected", [
    ("c.json", "{}", "a cluster file ends in .toml, .yaml or .yml"),
    ("c.yaml", "name: [", "line 1: not YAML"),
    ("c.toml", "name = ", "not TOML"),
    ("c.yaml", "- 1\n", "expected a table of keys"),
])
def test_unreadable_files(tmp_path, name, text, expected):
    found = problems(write(tmp_path, name, text))
    assert len(found) == 1 and expected in found[0], found
