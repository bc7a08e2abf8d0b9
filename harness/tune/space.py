"""The search space of `python -m harness tune`, as data: per engine, the settings, their values, the
start point (the engine's defaults), and each setting's expected gain, which orders the search
(`search_order`) by expected effect per cost. Why the gains are what they are: DESIGN.md ("Order")."""
from __future__ import annotations

from dataclasses import dataclass, replace

from sut.worker.preset import FORBIDDEN


class InputError(ValueError):
    pass


@dataclass(frozen=True)
class Setting:
    where: str            # "worker": a worker flag (a change is a restart) | "harness": a dispatch flag
    values: tuple[str, ...]
    start: str            # "none" leaves the flag out
    gain: float           # expected tokens/s gain of its best value over the start, as a fraction
    ordered: bool = False  # values on an axis (walked up then down); else each value is tried

    @property
    def restarts(self) -> bool:
        return self.where == "worker"

    def expected_probes(self) -> int:
        """Probes a walk of this setting costs when it finds nothing: one step each way (ordered),
        else every other value."""
        others = len(self.values) - 1
        return min(others, 2) if self.ordered else others


# Expected gains (DESIGN.md, "Order"): FP8 on H200 (vLLM, Llama-3.1-8B) gave ~6,358 tokens/s against
# ~4,100 in bf16 (+55 % for both; the weights the larger part: half the bytes read per decode step); the
# first GPU tune moved max-num-seqs 256 -> 512 / 128 by -2.5 % / -5.3 % and max-num-batched-tokens
# 8192 -> 16384 by -0.8 % in bf16 (larger batches pay off once FP8 frees memory); the credit factor
# moved the sim by ~1 %.
PRECISION = {"quantization": Setting("worker", ("none", "fp8"), "none", 0.35),
             "kv-cache-dtype": Setting("worker", ("auto", "fp8"), "auto", 0.10)}
SPACES = {
    "vllm": {**PRECISION,
             "max-num-seqs": Setting("worker", ("128", "256", "512", "1024"), "256", 0.05, ordered=True),
             "max-num-batched-tokens": Setting("worker", ("2048", "4096", "8192", "16384"), "8192", 0.02,
                                               ordered=True),
             "credit-factor": Setting("harness", ("1.0", "1.5", "2.0", "3.0"), "2.0", 0.02, ordered=True)},
    # the sim models FP8 (sut/engines/sim.py), so the order is tested on a CPU
    "sim": {**PRECISION,
            "max-seqs": Setting("worker", ("8", "16", "32", "64", "128"), "16", 0.05, ordered=True),
            "max-batched-tokens": Setting("worker", ("512", "1024", "2048", "4096", "0"), "1024", 0.02, ordered=True),
            "credit-factor": Setting("harness", ("1.0", "2.0", "3.0"), "2.0", 0.02, ordered=True)},
}
# an --engine-arg the user adds to the space: nothing is known of it, so it goes after the known ones
UNKNOWN_GAIN = 0.01


def search_order(space: dict[str, Setting]) -> list[str]:
    """Worker settings by expected gain per probe, then dispatch settings (no restart, and best tuned
    on the workers the search settled on), the same rule among them; ties keep the declared order."""
    return sorted(space, key=lambda k: (not space[k].restarts, -space[k].gain / max(space[k].expected_probes(), 1)))


def search_space(engine: str, overrides: list[str]) -> dict[str, Setting]:
    space = dict(SPACES[engine])
    for item in overrides:
        key, sep, values = item.partition("=")
        choices = tuple(v.strip() for v in values.split(",") if v.strip())
        if not sep or not choices:
            raise InputError(f"--space {item!r}: expected KEY=V1,V2,...")
        if key.replace("engine-arg:", "").replace("_", "-") in FORBIDDEN:
            raise InputError(f"--space {item!r}: sampling settings are fixed in the closed division")
        if key.startswith("engine-arg:"):
            if engine != "vllm":
                raise InputError(f"--space {item!r}: engine-arg: is for --engine vllm")
            space[key] = Setting("worker", choices, choices[0], UNKNOWN_GAIN)
        elif key in space:
            old = space[key]
            space[key] = replace(old, values=choices,
                                 start=old.start if old.start in choices else choices[len(choices) // 2])
        else:
            raise InputError(f"--space {item!r}: {key} is not a setting of engine {engine} "
                             f"({', '.join(space)}, or engine-arg:KEY)")
    return space


def start_point(space: dict[str, Setting]) -> dict[str, str]:
    return {k: s.start for k, s in space.items()}


def worker_flags(config: dict, space: dict[str, Setting]) -> list[str]:
    flags = []
    for key, value in config.items():
        if not space[key].restarts or value == "none":
            continue
        flags += (["--engine-arg", f"{key.split(':', 1)[1]}={value}"] if key.startswith("engine-arg:")
                  else [f"--{key}", value])
    return flags


def harness_flags(config: dict, space: dict[str, Setting]) -> list[str]:
    return [x for key, value in config.items() if not space[key].restarts for x in (f"--{key}", value)]
