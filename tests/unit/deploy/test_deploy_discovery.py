"""The coordinator Job's discovery of workers behind a headless Service, on a fake DNS resolver."""
from __future__ import annotations

import pytest

from harness.deploy.discovery import DiscoveryError, find_workers, wait_for_workers

FQDN = "mlperf-worker.bench.svc.cluster.local"


class FakeDNS:
    """Answers like cluster DNS for a headless Service: SRV per ready pod, A records of ready pods."""

    def __init__(self, ready_pods: list[int], srv=True, ips=None):
        self.ready, self.with_srv, self.ips = ready_pods, srv, ips or {}
        self.queries: list[str] = []

    def srv(self, name):
        self.queries.append(("SRV", name))
        if not self.with_srv or name != f"_grpc._tcp.{FQDN}":
            return []
        return [(f"mlperf-worker-{i}.{FQDN}.", 50051) for i in self.ready]

    def addresses(self, name):
        self.queries.append(("A", name))
        return [self.ips[i] for i in self.ready] if name == FQDN else []


def test_srv_records_give_stable_pod_names_in_ordinal_order():
    dns = FakeDNS([10, 2, 0, 1])
    assert find_workers(dns, "mlperf-worker", "bench") == [
        f"mlperf-worker-{i}.{FQDN}:50051" for i in (0, 1, 2, 10)]
    assert dns.queries == [("SRV", f"_grpc._tcp.{FQDN}")]


def test_without_srv_the_service_a_records_and_the_port():
    dns = FakeDNS([0, 1], srv=False, ips={0: "10.0.0.7", 1: "fd00::3"})
    assert find_workers(dns, "mlperf-worker", "bench", port=6000) == ["10.0.0.7:6000", "[fd00::3]:6000"]


def test_waits_until_every_expected_worker_is_ready():
    dns = FakeDNS([0])
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
        dns.ready.append(len(dns.ready))  # one more pod turns Ready each poll
    found = wait_for_workers(dns, "mlperf-worker", "bench", expect=3, timeout_s=60, poll_s=5,
                             clock=lambda: now[0], sleep=sleep)
    assert len(found) == 3 and now[0] == 10


def test_gives_up_naming_how_many_were_found():
    now = [0.0]
    with pytest.raises(DiscoveryError, match="^2 of 8 workers ready behind Service mlperf-worker in namespace bench "
                                             "after 30 s"):
        wait_for_workers(FakeDNS([0, 1]), "mlperf-worker", "bench", expect=8, timeout_s=30, poll_s=5,
                         clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
