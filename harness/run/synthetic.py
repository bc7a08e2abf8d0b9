"""Synthetic benchmark data in the cnn_eval.json format, with CNN-DailyMail-like prompt lengths.

python -m harness synthetic --samples 3000 --out synthetic.json [--seed 0]

Lengths ~ N(1000, 400) clipped to 128..1900 tokens; ids are random non-special Llama-3 ids after
a BOS, deterministic by seed. For throughput work only: the texts are placeholders, so no
accuracy can be measured on it.
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

BOS = 128000
FIRST_SPECIAL = 128000


def synthetic_records(samples: int, seed: int = 0, mean: float = 1000, spread: float = 400,
                      low: int = 128, high: int = 1900) -> list[dict]:
    rng = np.random.default_rng(seed)
    lengths = np.clip(np.rint(rng.normal(mean, spread, samples)), low, high).astype(int)
    records = []
    for i, length in enumerate(lengths):
        ids = rng.integers(0, FIRST_SPECIAL, size=int(length) - 1)
        records.append({"input": f"synthetic prompt {i}", "tok_input": [BOS, *ids.tolist()], "output": ""})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    records = synthetic_records(args.samples, args.seed)
    pathlib.Path(args.out).write_text(json.dumps(records))
    total = sum(len(r["tok_input"]) for r in records)
    print(f"{args.out}: {len(records)} prompts, {total} input tokens, mean {total / len(records):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
