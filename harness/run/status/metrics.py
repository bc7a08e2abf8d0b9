"""The status figures as Prometheus metrics (prometheus-client), read from the same source as the
page at each scrape; a private registry, so nothing else of the process is exported."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

PREFIX = "mlperf_run"
COUNTS = (("issued", "samples LoadGen issued"), ("completed", "samples completed"),
          ("expected", "samples the test is expected to issue"), ("output_tokens", "output tokens completed"),
          ("failed_attempts", "attempts that ended without an answer"), ("reissued", "queries re-issued"),
          ("errors", "engine errors"), ("outstanding", "samples issued and not yet answered"))
RATES = (("tokens_per_second", "recent_tokens_per_s", "output tokens per second, recent window"),
         ("samples_per_second", "samples_per_s", "samples per second, recent window"),
         ("elapsed_seconds", "elapsed_s", "seconds since the first query"),
         ("eta_seconds", "eta_s", "estimated seconds left"))


class StatusCollector:
    def __init__(self, source):
        self.source = source

    def collect(self):
        f = self.source.figures()
        if f is None:  # a source with nothing to show yet (a campaign between runs)
            return
        labels, values = ["run", "scenario"], [f["run"], f["scenario"]]

        def gauge(name: str, doc: str, value, extra: dict | None = None, family=None):
            family = family or GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels + list(extra or {}))
            if value is not None:
                family.add_metric(values + list((extra or {}).values()), float(value))
            return family

        for key, doc in COUNTS:
            yield gauge(key, doc, f[key])
        for name, key, doc in RATES:
            yield gauge(name, doc, f[key])
        for metric in ("ttft", "tpot"):
            figures = f[f"{metric}_ms"]
            family = GaugeMetricFamily(f"{PREFIX}_{metric}_seconds", f"{metric.upper()} percentiles at the "
                                       "coordinator", labels=labels + ["quantile"])
            for p in ("p50", "p90", "p99"):
                if figures[p] is not None:
                    family.add_metric(values + [f"0.{p[1:]}"], figures[p] / 1e3)
            yield family
            yield gauge(f"{metric}_p99_limit_seconds", f"the scenario's p99 {metric.upper()} limit",
                        None if figures["limit_p99"] is None else figures["limit_p99"] / 1e3)
        per_worker = {key: GaugeMetricFamily(f"{PREFIX}_worker_{key}", doc, labels=labels + ["worker", "address"])
                      for key, doc in (("tokens_per_s", "worker output tokens per second, recent window"),
                                       ("completed", "samples the worker completed"),
                                       ("in_flight", "requests in flight on the worker"),
                                       ("failures", "failed attempts on the worker"),
                                       ("reissued", "queries re-issued away from the worker"))}
        up = GaugeMetricFamily(f"{PREFIX}_worker_up", "1 when the worker is ready",
                               labels=labels + ["worker", "address", "state"])
        for w in f["workers"]:
            for key, family in per_worker.items():
                family.add_metric(values + [w["name"], w["address"]], float(w[key]))
            up.add_metric(values + [w["name"], w["address"], w["state"]], 1.0 if w["state"] == "ready" else 0.0)
        yield from per_worker.values()
        yield up


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def registry_for(source) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(source))
    return registry
