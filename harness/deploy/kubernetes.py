"""`python -m harness cluster render-k8s`: the Kubernetes manifests for N workers, as plain YAML.

- a headless Service (`clusterIP: None`, port `grpc`) giving each ready worker pod a stable DNS name
  (`mlperf-worker-3.mlperf-worker.NS.svc.cluster.local`) and an SRV record;
- the worker StatefulSet: one pod per worker, each requesting `nvidia.com/gpu` (1, or the
  tensor-parallel size), ready when the standard gRPC health check says SERVING (the kubelet's
  own `grpc` probe in plaintext; `grpc_health_probe -tls` when the workers serve TLS, which the
  kubelet's probe cannot speak);
- the coordinator Job: discovers the workers through the headless Service
  (`python -m harness cluster discover`), runs the harness, writes run directories to a PVC;
- a Service for the coordinator's live status page (`--status-port`);
- Secrets for the token and the TLS material only when their files are given (`--token-file`,
  `--tls-*`): then they land in a separate `secrets.yaml` (mode 0600); otherwise the manifests
  refer to Secrets created with `kubectl create secret` (deploy/README.md).
"""
from __future__ import annotations

import argparse
import base64
import os
import pathlib
import shlex
import sys
from dataclasses import dataclass

GRPC_PORT, STATUS_PORT = 50051, 8080
TOKEN_SECRET, TLS_SECRET = "mlperf-token", "mlperf-tls"
TOKEN_DIR, TLS_DIR = "/etc/mlperf/token", "/etc/mlperf/tls"
WORKER, COORDINATOR, RESULTS = "mlperf-worker", "mlperf-coordinator", "mlperf-results"


@dataclass(frozen=True)
class Options:
    workers: int
    namespace: str = "mlperf"
    worker_image: str = "mlperf-harness-worker:latest"
    coordinator_image: str = "mlperf-harness-coordinator:latest"
    model: str = "/models/Llama-3.1-8B-Instruct"
    models_claim: str = "mlperf-models"
    gpus_per_worker: int = 1
    engine_args: tuple[str, ...] = ()
    token: bool = True
    tls: bool = True
    results_storage: str = "20Gi"
    storage_class: str | None = None
    run_args: tuple[str, ...] = ("--scenario", "Offline", "--dataset", "/work/inputs/cnn_eval.json",
                                 "--user-conf", "/work/inputs/user.conf")
    discover_timeout_s: int = 1800

    @property
    def domain_suffix(self) -> str:
        return f"{WORKER}.{self.namespace}.svc.cluster.local"


def _meta(name: str, options: Options, app: str) -> dict:
    return {"name": name, "namespace": options.namespace, "labels": {"app": app, "part-of": "mlperf-harness"}}


def _secret_volumes(options: Options) -> tuple[list[dict], list[dict]]:
    volumes, mounts = [], []
    if options.token:
        volumes.append({"name": "token", "secret": {"secretName": TOKEN_SECRET, "defaultMode": 0o400}})
        mounts.append({"name": "token", "mountPath": TOKEN_DIR, "readOnly": True})
    if options.tls:
        volumes.append({"name": "tls", "secret": {"secretName": TLS_SECRET, "defaultMode": 0o400}})
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
    return volumes, mounts


def headless_service(options: Options) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(WORKER, options, WORKER),
            "spec": {"clusterIP": "None", "selector": {"app": WORKER}, "publishNotReadyAddresses": False,
                     "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT, "protocol": "TCP"}]}}


def readiness_probe(options: Options) -> dict:
    timing = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    if not options.tls:
        return {"grpc": {"port": GRPC_PORT}, **timing}
    # the certificate names the pod (*.mlperf-worker.NS.svc.cluster.local); a probe's command gets no
    # $(VAR) expansion, so the shell supplies the pod's name
    probe = (f"exec /usr/local/bin/grpc_health_probe -addr=localhost:{GRPC_PORT} -tls -tls-ca-cert={TLS_DIR}/ca.crt "
             f"-tls-server-name=$POD_NAME.{options.domain_suffix}")
    return {"exec": {"command": ["sh", "-c", probe]}, **timing}


def worker_statefulset(options: Options) -> dict:
    volumes, mounts = _secret_volumes(options)
    volumes += [{"name": "models", "persistentVolumeClaim": {"claimName": options.models_claim, "readOnly": True}},
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}]
    mounts += [{"name": "models", "mountPath": "/models", "readOnly": True}, {"name": "shm", "mountPath": "/dev/shm"}]
    args = ["--engine", "vllm", "--model", options.model, "--host", "0.0.0.0", "--port", str(GRPC_PORT),
            "--worker-id", "$(POD_NAME)"]
    if options.gpus_per_worker > 1:
        args += ["--tensor-parallel-size", str(options.gpus_per_worker)]
    if options.token:
        args += ["--auth-token-file", f"{TOKEN_DIR}/token"]
    if options.tls:
        args += ["--tls-cert", f"{TLS_DIR}/tls.crt", "--tls-key", f"{TLS_DIR}/tls.key"]
    if not (options.token or options.tls):
        args.append("--insecure")  # the pod network only: documented in deploy/README.md
    gpus = str(options.gpus_per_worker)
    container = {
        "name": "worker", "image": options.worker_image, "command": ["python", "-m", "sut.worker"],
        "args": args + list(options.engine_args),
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"}],
        "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
        "readinessProbe": readiness_probe(options), "volumeMounts": mounts}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(WORKER, options, WORKER),
            "spec": {"serviceName": WORKER, "replicas": options.workers, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": {"app": WORKER}},
                     "template": {"metadata": {"labels": {"app": WORKER, "part-of": "mlperf-harness"}},
                                  "spec": {"containers": [container], "volumes": volumes,
                                           "terminationGracePeriodSeconds": 30}}}}


def results_claim(options: Options) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": options.results_storage}}}
    if options.storage_class:
        spec["storageClassName"] = options.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(RESULTS, options, COORDINATOR),
            "spec": spec}


def coordinator_job(options: Options) -> dict:
    volumes, mounts = _secret_volumes(options)
    volumes.append({"name": "work", "persistentVolumeClaim": {"claimName": RESULTS}})
    mounts.append({"name": "work", "mountPath": "/work"})
    discover = ["python", "-m", "harness", "cluster", "discover", "--service", WORKER, "--namespace",
                options.namespace, "--port-name", "grpc", "--expect", str(options.workers), "--timeout",
                str(options.discover_timeout_s)]
    run = ["python", "-m", "harness", "run", "--workers", "WORKERS", *options.run_args, "--output", "/work/runs",
           "--status-port", str(STATUS_PORT)]
    if options.token:
        run += ["--auth-token-file", f"{TOKEN_DIR}/token"]
    if options.tls:
        run += ["--tls-ca", f"{TLS_DIR}/ca.crt"]
    script = f"set -e; workers=$({shlex.join(discover)}); exec {shlex.join(run)}".replace("WORKERS", '"$workers"')
    container = {"name": "coordinator", "image": options.coordinator_image, "command": ["sh", "-c", script],
                 "ports": [{"name": "status", "containerPort": STATUS_PORT, "protocol": "TCP"}],
                 "resources": {"requests": {"cpu": "2", "memory": "8Gi"}}, "volumeMounts": mounts}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(COORDINATOR, options, COORDINATOR),
            "spec": {"backoffLimit": 0,
                     "template": {"metadata": {"labels": {"app": COORDINATOR, "part-of": "mlperf-harness"}},
                                  "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes}}}}


def status_service(options: Options) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta("mlperf-status", options, COORDINATOR),
            "spec": {"selector": {"app": COORDINATOR}, "type": "ClusterIP",
                     "ports": [{"name": "status", "port": STATUS_PORT, "targetPort": STATUS_PORT, "protocol": "TCP"}]}}


def render(options: Options) -> list[dict]:
    if options.workers < 1 or options.gpus_per_worker < 1:
        raise ValueError("--workers and --gpus-per-worker must be >= 1")
    return [headless_service(options), worker_statefulset(options), results_claim(options), coordinator_job(options),
            status_service(options)]


def render_secrets(options: Options, token_file: str | None, tls_cert: str | None, tls_key: str | None,
                   tls_ca: str | None) -> list[dict]:
    """Secrets from files on this machine (their contents go only into the returned objects)."""
    def b64(path: str) -> str:
        return base64.b64encode(pathlib.Path(path).read_bytes()).decode()
    secrets = []
    if token_file:
        secrets.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": _meta(TOKEN_SECRET, options, "mlperf-harness"), "data": {"token": b64(token_file)}})
    if tls_cert:
        secrets.append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": _meta(TLS_SECRET, options, "mlperf-harness"),
                        "data": {"tls.crt": b64(tls_cert), "tls.key": b64(tls_key), "ca.crt": b64(tls_ca)}})
    return secrets


def to_yaml(objects: list[dict]) -> str:
    import yaml
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, required=True, help="worker pods (one per GPU or TP group)")
    parser.add_argument("--out", required=True, help="folder for mlperf.yaml (and secrets.yaml)")
    parser.add_argument("--namespace", default=Options.namespace)
    parser.add_argument("--worker-image", default=Options.worker_image)
    parser.add_argument("--coordinator-image", default=Options.coordinator_image)
    parser.add_argument("--model", default=Options.model, help="model directory inside the worker pods")
    parser.add_argument("--models-claim", default=Options.models_claim, help="PVC holding the weights (/models)")
    parser.add_argument("--gpus-per-worker", type=int, default=1, help="tensor-parallel size")
    parser.add_argument("--storage-class", default=None)
    parser.add_argument("--no-tls", action="store_true", help="plaintext gRPC on the pod network")
    parser.add_argument("--no-token", action="store_true", help="no bearer token")
    parser.add_argument("--engine-arg", action="append", default=[], metavar="FLAG",
                        help="extra worker flag (repeat), e.g. --engine-arg=--max-num-seqs=256")
    for flag in ("--token-file", "--tls-cert", "--tls-key", "--tls-ca"):
        parser.add_argument(flag, default=None, metavar="FILE", help="write secrets.yaml from this file")


def main(args: argparse.Namespace) -> int:
    tls_files = [args.tls_cert, args.tls_key, args.tls_ca]
    if any(tls_files) and not all(tls_files):
        print("error: --tls-cert, --tls-key and --tls-ca go together", file=sys.stderr)
        return 2
    for path in [args.token_file, *tls_files]:
        if path and not os.access(path, os.R_OK):
            print(f"error: {path}: not a readable file", file=sys.stderr)
            return 2
    try:
        options = Options(workers=args.workers, namespace=args.namespace, worker_image=args.worker_image,
                          coordinator_image=args.coordinator_image, model=args.model, models_claim=args.models_claim,
                          gpus_per_worker=args.gpus_per_worker, engine_args=tuple(args.engine_arg),
                          token=not args.no_token, tls=not args.no_tls, storage_class=args.storage_class)
        objects = render(options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mlperf.yaml").write_text(to_yaml(objects))
    print(f"wrote {out / 'mlperf.yaml'} ({len(objects)} objects, {args.workers} workers)")
    secrets = render_secrets(options, args.token_file, args.tls_cert, args.tls_key, args.tls_ca)
    if secrets:
        path = out / "secrets.yaml"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(to_yaml(secrets))
        print(f"wrote {path} (mode 0600: it holds the token/TLS key; apply it, never commit it)")
    return 0
