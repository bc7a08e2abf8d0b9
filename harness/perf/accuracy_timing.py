"""Time ROUGE scoring of a 13,368-sample accuracy log on this machine (goal: under 60 s on 2 cores).

python scripts/bench_accuracy.py [--samples 13368]

Builds a cnn_eval.json-format dataset and an int32 accuracy log from the embedded tiny model's
tokenizer (predictions of about 128 tokens of news text), then runs the same scoring as
`python -m harness accuracy` and prints the wall time.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
import tempfile
import time

import numpy as np

from harness.run.tiny_model import DATA_DIR, tiny_model_dir
from harness.submission.accuracy.scoring import evaluate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=13368)
    args = p.parse_args(argv)
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir()))
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    sentences = [s + "." for a in articles for s in a["article"].split(". ")]
    rng = random.Random(0)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-accuracy-"))
    references, log = [], []
    for i in range(args.samples):
        prediction = " ".join(rng.sample(sentences, 4))
        references.append(" ".join(rng.sample(sentences, 3)))
        ids = np.asarray(tokenizer.encode(prediction)[:128], dtype="<i4")
        log.append({"seq_id": i, "qsl_idx": i, "data": ids.tobytes().hex().upper(), "token_count": len(ids)})
    (work / "mlperf_log_accuracy.json").write_text(json.dumps(log))
    started = time.monotonic()
    results = evaluate(work / "mlperf_log_accuracy.json", references, tokenizer)
    elapsed = time.monotonic() - started
    print(results)
    print(f"scored {args.samples} samples in {elapsed:.1f} s (goal < 60 s)")
    return 0
