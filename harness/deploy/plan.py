"""What a cluster file means: one worker per GPU (or tensor-parallel group) per host, each a
`sut.worker.launch.WorkerSpec` with its host's interpreter, port, CUDA_VISIBLE_DEVICES and flags.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from harness.deploy.config import ClusterConfig, HostConfig, resolve_local
from sut.security import LinkSecurity
from sut.worker.launch import WorkerSpec

# engines that need a GPU: their hosts must list the GPUs the file names (nvidia-smi)
GPU_ENGINES = frozenset({"vllm"})
PRESET_NAME = "preset.json"


@dataclass(frozen=True)
class WorkerPlan:
    host: HostConfig
    gpus: tuple[int, ...]
    port: int
    spec: WorkerSpec

    @property
    def gpu_label(self) -> str:
        return ",".join(str(g) for g in self.gpus)

    @property
    def stem(self) -> str:
        """Names the worker's pid file and log on its host (the host's name first: hosts may share
        a home directory)."""
        return f"{self.host.label}-gpu" + "-".join(str(g) for g in self.gpus)

    @property
    def address(self) -> str:
        host = self.host.advertise or self.host.address
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def matches(self, selector: str) -> bool:
        """HOST or HOST:GPU (a GPU of the worker's group, or the group as 0,1)."""
        host, _, gpu = selector.partition(":")
        return host == self.host.label and (not gpu or gpu == self.gpu_label or gpu in map(str, self.gpus))


def remote_dir(config: ClusterConfig) -> str:
    return f"{config.remote_dir.rstrip('/')}/{config.name}"


def engine_flags(args: dict) -> list[str]:
    flags = []
    for key, value in args.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not None and value is not False:
            flags += [flag, str(value)]
    return flags


def plan_cluster(config: ClusterConfig) -> list[WorkerPlan]:
    common = engine_flags(config.engine_args) + config.security.worker_flags()
    if config.preset:
        common += ["--preset", f"{remote_dir(config)}/{PRESET_NAME}"]
    plans = []
    for host in config.hosts:
        base = host.base_port or config.base_port
        for i, group in enumerate(host.gpu_groups()):
            tp = ["--tensor-parallel-size", str(len(group))] if config.engine in GPU_ENGINES and len(group) > 1 else []
            gpus = ",".join(str(g) for g in group)
            spec = WorkerSpec(config.engine, config.model, host=config.bind, port=base + i,
                              worker_id=f"{host.label}:gpu{gpus}", engine_args=tuple(tp + common),
                              env={**host.env, "CUDA_VISIBLE_DEVICES": gpus}, python=host.python)
            plans.append(WorkerPlan(host, group, base + i, spec))
    return plans


def worker_addresses(config: ClusterConfig) -> list[str]:
    return [plan.address for plan in plan_cluster(config)]


def link_security(config: ClusterConfig, cluster_file: str | os.PathLike) -> LinkSecurity:
    """The coordinator's side of the cluster's TLS and token (files read here, never copied)."""
    sec = config.security

    def local(value: str | None) -> str | None:
        return str(resolve_local(cluster_file, value)) if value else None

    return LinkSecurity.from_files(local(sec.token_file), local(sec.tls_ca), local(sec.tls_client_cert),
                                   local(sec.tls_client_key), sec.tls_server_name)
