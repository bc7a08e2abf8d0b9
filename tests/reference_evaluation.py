"""Runs inside the reference environment (transformers 4.46.2, nltk 3.8.1 with NLTK's english.pickle,
rouge-score 0.1.2, numpy 1.26): the steps of MLCommons' language/llama3.1-8b/evaluation.py.

python reference_evaluation.py --mlperf-accuracy-file LOG --dataset-file cnn_eval.json --model-name TOKDIR [--dtype int32]
python reference_evaluation.py ... --dump-texts  # decoded texts and split predictions/targets, as JSON
python reference_evaluation.py --dump-punkt   # the English Punkt parameters nltk 3.8.1 loads, as JSON

evaluate.load("rouge") with use_aggregator=False is rouge_score's RougeScorer(rouge_types,
use_stemmer=True).score(reference, prediction) per sample, fmeasure kept; scoring is spread over
processes in order (each sample's score does not depend on the others).
"""
import argparse
import json
import multiprocessing

import nltk
import numpy as np
from rouge_score import rouge_scorer
from transformers import AutoTokenizer

ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def postprocess_text(preds, targets):
    preds = [pred.strip() for pred in preds]
    targets = [target.strip() for target in targets]
    # rougeLSum expects newline after each sentence
    preds = ["\n".join(nltk.sent_tokenize(pred)) for pred in preds]
    targets = ["\n".join(nltk.sent_tokenize(target)) for target in targets]
    return preds, targets


def _score(pairs):
    scorer = rouge_scorer.RougeScorer(rouge_types=ROUGE_TYPES, use_stemmer=True)
    return [scorer.score(ref, pred) for pred, ref in pairs]


def rouge_compute(predictions, references, processes):
    pairs = list(zip(predictions, references))
    size = max(1, -(-len(pairs) // (processes * 4)))
    chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
    if processes > 1 and len(chunks) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            scores = [s for chunk in pool.map(_score, chunks) for s in chunk]
    else:
        scores = [s for chunk in chunks for s in _score(chunk)]
    return {key: [score[key].fmeasure for score in scores] for key in ROUGE_TYPES}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mlperf-accuracy-file")
    parser.add_argument("--dataset-file")
    parser.add_argument("--model-name")
    parser.add_argument("--dtype", default="int64", choices=["int32", "int64"])
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--dump-punkt", action="store_true")
    parser.add_argument("--dump-texts", action="store_true", help="print the decoded and split texts as JSON")
    args = parser.parse_args()
    if args.dump_punkt:
        p = nltk.data.load("tokenizers/punkt/english.pickle")._params
        print(json.dumps({"abbrev_types": sorted(p.abbrev_types), "collocations": sorted(map(list, p.collocations)),
                          "sent_starters": sorted(p.sent_starters), "ortho_context": sorted(p.ortho_context.items())}))
        return

    tokenizer = AutoTokenizer.from_pretrained(args.model_name, model_max_length=128000, padding_side="left",
                                              use_fast=False)
    with open(args.dataset_file) as f:
        targets = [record["output"] for record in json.load(f)]
    with open(args.mlperf_accuracy_file) as f:
        results = json.load(f)
    eval_dtype = np.int64 if args.dtype == "int64" else np.int32

    seen = set()
    target_required = []
    preds_token_ids = []
    for pred in results:
        qsl_idx = pred["qsl_idx"]
        if qsl_idx in seen:
            continue
        seen.add(qsl_idx)
        target_required.append(targets[qsl_idx])
        preds_token_ids.append(np.frombuffer(bytes.fromhex(pred["data"]), eval_dtype))

    preds_decoded_text = tokenizer.batch_decode(preds_token_ids, skip_special_tokens=True)
    preds, targets = postprocess_text(preds_decoded_text, target_required)
    if args.dump_texts:
        print(json.dumps({"decoded": preds_decoded_text, "preds": preds, "targets": targets}))
        return
    result = rouge_compute(preds, targets, args.processes)
    result = {k: f"{round(np.mean(v) * 100, 4)}" for k, v in result.items()}
    prediction_lens = [len(pred) for pred in preds]
    gen_num = len(preds)
    result = {**result, "gen_len": np.sum(prediction_lens), "gen_num": gen_num}
    print("\nResults\n")
    print(result)


if __name__ == "__main__":
    main()
