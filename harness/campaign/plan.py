"""The campaign's steps and what each one needs, declared as data (EDGES), and the plan: which steps
are kept from an earlier run, which run, which are blocked.

Two relations: `needs` (the step uses the other's result; if that one did not finish, this one is
blocked) and `after` (order only: accuracy and TEST06 run after the scenario's performance run so
the measured run comes first on fresh workers, but do not depend on it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.benchmarks.definitions import BENCHMARKS
from harness.benchmarks.scenarios import SCENARIOS
from harness.campaign.config import CampaignConfig

RUN_KINDS = ("performance", "accuracy", "TEST06")  # each one `python -m harness run`


@dataclass(frozen=True)
class Edge:
    before: str      # step kind
    after: str       # step kind
    relation: str    # "needs" | "after"
    scope: str       # "scenario": the same scenario's steps; "packaged": the steps that go into the tree


EDGES = (
    Edge("find-qps", "performance", "needs", "scenario"),   # Server/Interactive need a target_qps
    Edge("find-qps", "TEST06", "needs", "scenario"),        # TEST06 runs the scenario's schedule too
    Edge("performance", "accuracy", "after", "scenario"),
    Edge("performance", "TEST06", "after", "scenario"),
    Edge("performance", "package", "needs", "packaged"),
    Edge("accuracy", "package", "needs", "packaged"),
    Edge("TEST06", "package", "needs", "packaged"),
    Edge("package", "check", "needs", "packaged"),
)


@dataclass(frozen=True)
class Step:
    kind: str
    scenario: str | None = None
    repeat: int = 1
    needs: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        name = self.kind if self.scenario is None else f"{self.kind}/{self.scenario}"
        return name if self.repeat == 1 else f"{name}#{self.repeat}"

    @property
    def slug(self) -> str:
        """For file and folder names."""
        return self.id.replace("/", "-").replace("#", "-repeat")

    @property
    def packaged(self) -> bool:
        return self.repeat == 1


def _candidates(config: CampaignConfig) -> list[Step]:
    """Every step the config asks for, scenario by scenario, then package and check."""
    benchmark = next(b for b in BENCHMARKS if b.folder == config.benchmark)
    steps = []
    for scenario in config.scenarios:
        server_like = SCENARIOS[scenario].server_like and scenario != "SingleStream"
        if "find-qps" in config.steps and server_like and scenario not in config.loadgen.target_qps:
            steps.append(Step("find-qps", scenario))
        if "performance" in config.steps:
            steps += [Step("performance", scenario, n) for n in range(1, config.repeat + 1)]
        if "accuracy" in config.steps:
            steps.append(Step("accuracy", scenario))
        if "TEST06" in config.steps and benchmark.test06:
            steps.append(Step("TEST06", scenario))
    steps += [Step(kind) for kind in ("package", "check") if kind in config.steps]
    return steps


def _related(edge: Edge, step: Step, other: Step) -> bool:
    if edge.before != other.kind or edge.after != step.kind:
        return False
    if edge.scope == "scenario":
        return other.scenario == step.scenario
    return other.packaged


def build_plan(config: CampaignConfig) -> list[Step]:
    """The steps in the order they run (a topological order of EDGES)."""
    steps = _candidates(config)
    out = []
    for step in steps:
        needs = tuple(o.id for o in steps for e in EDGES if e.relation == "needs" and _related(e, step, o))
        after = tuple(o.id for o in steps for e in EDGES if e.relation == "after" and _related(e, step, o))
        out.append(Step(step.kind, step.scenario, step.repeat, needs, after))
    order = {s.id: i for i, s in enumerate(out)}
    for step in out:  # the candidate order must already respect every edge
        assert all(order[d] < order[step.id] for d in step.needs + step.after), step
    return out


@dataclass
class Decision:
    step: Step
    action: str                  # "keep" | "run"
    reason: str = ""
    record: dict = field(default_factory=dict)
