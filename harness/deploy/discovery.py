"""`python -m harness cluster discover`: the workers behind a Kubernetes headless Service, printed
as a `--workers` list for the coordinator Job.

A headless Service publishes a record per *ready* pod (the readiness probe is the gRPC health
check), so the coordinator waits until `--expect` workers are published or `--timeout` passes.
Where it can, it reads the SRV records (`_grpc._tcp.SERVICE.NS.svc.DOMAIN`: each pod's stable name
and port, which the workers' TLS certificate names); without SRV answers it falls back to the
Service's A/AAAA records (pod IPs, `--port`). Addresses are sorted by pod ordinal so worker N is
always the same pod.
"""
from __future__ import annotations

import argparse
import re
import socket
import sys
import time
from typing import Protocol


class DiscoveryError(RuntimeError):
    pass


class Resolver(Protocol):
    def srv(self, name: str) -> list[tuple[str, int]]:
        """(target host name, port) of each SRV record; [] when there is none."""

    def addresses(self, name: str) -> list[str]:
        """IP addresses of the name's A/AAAA records; [] when there is none."""


class SystemResolver:
    """SRV through dnspython (the coordinator image installs it), A/AAAA through the system."""

    def srv(self, name: str) -> list[tuple[str, int]]:
        try:
            import dns.exception
            import dns.resolver
        except ImportError:
            return []
        try:
            return [(str(r.target), int(r.port)) for r in dns.resolver.resolve(name, "SRV")]
        except dns.exception.DNSException:
            return []

    def addresses(self, name: str) -> list[str]:
        try:
            return sorted({info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)})
        except socket.gaierror:
            return []


def _ordinal(host: str) -> tuple[int, str]:
    match = re.match(r"^[^.]*-(\d+)(\.|$)", host)
    return (int(match.group(1)) if match else 1 << 30, host)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def find_workers(resolver: Resolver, service: str, namespace: str, port_name: str = "grpc", port: int = 50051,
                 domain: str = "cluster.local") -> list[str]:
    fqdn = f"{service}.{namespace}.svc.{domain}"
    records = {(target.rstrip("."), p) for target, p in resolver.srv(f"_{port_name}._tcp.{fqdn}")}
    if records:
        return [_join(target, p) for target, p in sorted(records, key=lambda r: _ordinal(r[0]))]
    return [_join(ip, port) for ip in resolver.addresses(fqdn)]


def wait_for_workers(resolver: Resolver, service: str, namespace: str, expect: int, timeout_s: float,
                     poll_s: float = 5.0, clock=time.monotonic, sleep=time.sleep, **names) -> list[str]:
    """All `expect` workers once published; DiscoveryError naming how many were found otherwise."""
    deadline = clock() + timeout_s
    while True:
        found = find_workers(resolver, service, namespace, **names)
        if len(found) >= expect:
            return found
        if clock() >= deadline:
            raise DiscoveryError(f"{len(found)} of {expect} workers ready behind Service {service} in namespace "
                                 f"{namespace} after {timeout_s:g} s (kubectl -n {namespace} get pods -l "
                                 f"app={service}; a pod that is not Ready never reports SERVING)")
        sleep(poll_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", required=True, help="the workers' headless Service")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--port-name", default="grpc", help="the Service's port name (SRV: _NAME._tcp)")
    parser.add_argument("--port", type=int, default=50051, help="port with A records only")
    parser.add_argument("--domain", default="cluster.local", help="the cluster's DNS domain")
    parser.add_argument("--expect", type=int, required=True, help="workers to wait for")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for them")


def main(args: argparse.Namespace, resolver: Resolver | None = None) -> int:
    try:
        found = wait_for_workers(resolver or SystemResolver(), args.service, args.namespace, args.expect, args.timeout,
                                 port_name=args.port_name, port=args.port, domain=args.domain)
    except DiscoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(",".join(found))
    return 0
