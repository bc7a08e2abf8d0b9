"""What a tune probe will cost, from what finished probes cost: a worker restart (load, CUDA graphs,
the warm-up run) and a timed run, each the largest measured so far (a probe that cannot finish in
the budget left is never started); before anything is measured, the engine's prior."""
from __future__ import annotations

from dataclasses import dataclass

from harness.tune.probe import Probe

# restart (warm-up included), run: the first GPU tune of issue 12 (vLLM, H200, 1000 prompts x 128
# tokens) took 96 s for a cold restart + run and 33 s for a run on a running worker
PRIORS = {"vllm": (70.0, 35.0), "sim": (5.0, 10.0)}


@dataclass
class Estimate:
    restart_s: float
    run_s: float
    measured: bool

    @property
    def total_s(self) -> float:
        return self.restart_s + self.run_s

    def describe(self) -> str:
        source = "measured" if self.measured else "prior"
        parts = ([f"restart ~{self.restart_s:.0f} s"] if self.restart_s else []) + [f"run ~{self.run_s:.0f} s"]
        return f"~{self.total_s:.0f} s ({' + '.join(parts)}, {source})"


def estimate(engine: str, probes: list[Probe], restart: bool) -> Estimate:
    restarts = [p.restart_s for p in probes if p.restart_s > 0]
    runs = [p.wall_s - p.restart_s for p in probes if p.tokens_per_s > 0]
    prior_restart, prior_run = PRIORS[engine]
    return Estimate(max(restarts, default=prior_restart) if restart else 0.0, max(runs, default=prior_run),
                    bool(runs) and (bool(restarts) or not restart))
