"""Score an accuracy log the way MLCommons' llama3.1-8b evaluation.py does, fast.

Dedupe by qsl_idx (first wins) -> int32 ids -> detokenize (special tokens skipped) -> strip ->
sentences joined by newlines (predictions and references) -> ROUGE-1/2/L/Lsum F-measure with
stemming per sample (rouge-score), mean x 100 rounded to 4 places; gen_len = total characters of
the processed predictions; gen_num = their count. Samples are scored in parallel processes.
"""
from __future__ import annotations

import functools
import json
import multiprocessing
import os
import pathlib

import numpy as np

from harness.submission.accuracy.reference_compat import batch_decode
from harness.submission.accuracy.sentences import sent_tokenize

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class AccuracyLogError(ValueError):
    pass


def read_accuracy_log(path: pathlib.Path, dtype: str = "int32") -> dict[int, np.ndarray]:
    try:
        entries = json.loads(pathlib.Path(path).read_text())
    except FileNotFoundError:
        raise AccuracyLogError(f"{path}: accuracy log not found") from None
    except json.JSONDecodeError as exc:
        raise AccuracyLogError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); a truncated log "
                               f"cannot be scored") from None
    outputs: dict[int, np.ndarray] = {}
    for i, entry in enumerate(entries):
        try:
            index, data = int(entry["qsl_idx"]), entry["data"]
        except (KeyError, TypeError, ValueError):
            raise AccuracyLogError(f"{path}: entry {i}: needs 'qsl_idx' and 'data'") from None
        if index not in outputs:
            outputs[index] = np.frombuffer(bytes.fromhex(data), dtype=np.dtype(dtype).newbyteorder("<"))
    return outputs


def postprocess(text: str) -> str:
    return "\n".join(sent_tokenize(text.strip()))


class _CachedStemmer:
    """rouge-score stems every token of every text again; summaries share most words."""

    def __init__(self):
        from nltk.stem import porter
        self._stem = functools.lru_cache(maxsize=None)(porter.PorterStemmer().stem)

    def stem(self, word: str) -> str:
        return self._stem(word)


def make_scorer():
    """rouge-score's default tokenizer with stemming, identical output, stems cached."""
    from rouge_score import rouge_scorer, tokenize, tokenizers

    class StemCachingTokenizer(tokenizers.Tokenizer):
        def __init__(self):
            self._stemmer = _CachedStemmer()

        def tokenize(self, text):
            return tokenize.tokenize(text, self._stemmer)

    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=StemCachingTokenizer())


def _score_chunk(pairs: list[tuple[str, str]]) -> np.ndarray:
    scorer = make_scorer()
    scores = np.empty((len(pairs), len(ROUGE_KEYS)))
    for row, (prediction, reference) in enumerate(pairs):
        result = scorer.score(reference, prediction)
        scores[row] = [result[key].fmeasure for key in ROUGE_KEYS]
    return scores


def rouge_scores(predictions: list[str], references: list[str], processes: int | None = None) -> np.ndarray:
    pairs = list(zip(predictions, references))
    processes = processes or min(len(pairs) // 200 + 1, os.cpu_count() or 1)
    if processes <= 1:
        return _score_chunk(pairs)
    size = -(-len(pairs) // (processes * 4))
    chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return np.concatenate(pool.map(_score_chunk, chunks))


def evaluate(log_path: pathlib.Path, references: list[str], tokenizer, dtype: str = "int32",
             processes: int | None = None) -> dict:
    outputs = read_accuracy_log(log_path, dtype)
    indices = list(outputs)  # first-logged order, as evaluation.py keeps them (the means are summed in it)
    for index in indices:
        if not 0 <= index < len(references):
            raise AccuracyLogError(f"{log_path}: qsl_idx {index} is outside the dataset's {len(references)} records")
    texts = batch_decode(tokenizer, [outputs[i].tolist() for i in indices])  # as transformers 4.46.2
    predictions = [postprocess(t) for t in texts]
    targets = [postprocess(references[i]) for i in indices]
    scores = rouge_scores(predictions, targets, processes)
    results = {key: f"{round(float(np.mean(scores[:, k])) * 100, 4)}" for k, key in enumerate(ROUGE_KEYS)}
    # plain ints: numpy >= 2 would print np.int64(...), which the checker's regex cannot read
    results["gen_len"] = int(sum(len(p) for p in predictions))
    results["gen_num"] = len(predictions)
    return results


def accuracy_text(results: dict) -> str:
    """What MLCommons' evaluation.py prints, which the submission checker parses."""
    return "\nResults\n\n" + repr(results) + "\n"
