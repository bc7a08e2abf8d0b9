"""A campaign's status as Prometheus gauges (prometheus-client, a private registry), next to the
running step's run gauges (`mlperf_run_*`, the run package's own collector over the followed run)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from harness.run.status.metrics import StatusCollector

PREFIX = "mlperf_campaign"


class CampaignCollector:
    def __init__(self, source):
        self.source = source

    def collect(self):
        f = self.source.figures()
        name = f["campaign"]

        def gauge(metric: str, doc: str, value, **labels) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"{PREFIX}_{metric}", doc, labels=["campaign", *labels])
            if value is not None:
                family.add_metric([name, *labels.values()], float(value))
            return family

        yield gauge("elapsed_seconds", "seconds since the campaign started", f["elapsed_s"])
        yield gauge("eta_seconds", "estimated seconds left (steps without an estimate not counted)", f["eta_s"])
        yield gauge("eta_unknown_steps", "steps still to run that have no duration estimate", f["eta_unknown_steps"])
        yield gauge("steps_to_run", "steps this campaign runs (the rest are kept)", f["to_run"])
        yield gauge("steps_finished", "steps this campaign ran (or found blocked) so far", f["finished_now"])
        yield gauge("running", "1 while a campaign runs its steps, 0 once it ended", f["state"] == "running")
        per_status = GaugeMetricFamily(f"{PREFIX}_steps", "steps by status", labels=["campaign", "status"])
        for status, count in sorted(f["counts"].items()):
            per_status.add_metric([name, status], float(count))
        yield per_status
        state = GaugeMetricFamily(f"{PREFIX}_step_status", "1 for each step's current status",
                                  labels=["campaign", "step", "status"])
        duration = GaugeMetricFamily(f"{PREFIX}_step_duration_seconds", "how long a finished step took",
                                     labels=["campaign", "step"])
        running = GaugeMetricFamily(f"{PREFIX}_step_running_seconds", "how long the running step has run",
                                    labels=["campaign", "step"])
        for step in f["steps"]:
            state.add_metric([name, step["id"], step["status"]], 1.0)
            if step["duration_s"] is not None:
                duration.add_metric([name, step["id"]], float(step["duration_s"]))
        if f["running"]:
            running.add_metric([name, f["running"]], float(f["running_s"]))
        yield from (state, duration, running)


def registry_for_campaign(status) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CampaignCollector(status))
    registry.register(StatusCollector(status.run))
    return registry
