"""The Kubernetes manifests, rendered for 2 and 8 workers, against the Kubernetes schemas
(kubernetes-validate ships them: no cluster, no network)."""
from __future__ import annotations

import argparse
import pathlib

import kubernetes_validate
import pytest
import yaml

from harness.deploy.kubernetes import Options, add_arguments, main, render, render_secrets

REPO = pathlib.Path(__file__).resolve().parents[3]
K8S_VERSION = "1.30.0"


def validate(objects):
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def by_kind(objects):
    return {obj["kind"]: obj for obj in objects if obj["kind"] != "Service"}


@pytest.mark.parametrize("workers", [2, 8])
@pytest.mark.parametrize("secure", [True, False])
def test_manifests_are_valid_kubernetes(workers, secure):
    objects = render(Options(workers=workers, tls=secure, token=secure, gpus_per_worker=2 if workers == 8 else 1))
    validate(objects)
    kinds = by_kind(objects)
    sts = kinds["StatefulSet"]["spec"]
    assert sts["replicas"] == workers and sts["serviceName"] == "mlperf-worker"
    container = sts["template"]["spec"]["containers"][0]
    gpus = "2" if workers == 8 else "1"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
    probe = container["readinessProbe"]
    assert ("exec" in probe and "grpc_health_probe" in probe["exec"]["command"][-1]) if secure else \
        probe["grpc"] == {"port": 50051}
    headless = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "mlperf-worker")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["ports"][0]["name"] == "grpc"
    script = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert f"--expect {workers}" in script and '--workers "$workers"' in script and "--output /work/runs" in script
    assert ("--tls-ca" in script) == secure and ("--insecure" in container["args"]) == (not secure)
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == "mlperf-results"


def test_the_schema_check_can_fail():
    broken = render(Options(workers=2))[1]
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate([broken])


def test_secrets_from_files_are_valid_and_written_apart(tmp_path):
    for name in ("token", "tls.crt", "tls.key", "ca.crt"):
        (tmp_path / name).write_text(f"{name}-contents")
    secrets = render_secrets(Options(workers=2), str(tmp_path / "token"), str(tmp_path / "tls.crt"),
                             str(tmp_path / "tls.key"), str(tmp_path / "ca.crt"))
    validate(secrets)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--workers", "2", "--out", str(out), "--token-file", str(tmp_path / "token")])
    assert main(args) == 0
    assert "token-contents" not in (out / "mlperf.yaml").read_text()
    assert (out / "secrets.yaml").stat().st_mode & 0o077 == 0


def test_the_committed_example_is_what_the_renderer_writes():
    committed = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "mlperf.yaml").read_text()))
    assert committed == render(Options(workers=2))
