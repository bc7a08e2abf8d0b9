"""The embedded default model and dataset, built at first use from text shipped in the repo.

A Llama-architecture model with random weights (seeded, so every machine builds the same one), a
byte-level BPE tokenizer trained on harness/data/articles.json, and a dataset in MLPerf's
cnn_eval.json format whose prompts use the reference template. Nothing is downloaded.
"""
from __future__ import annotations

import json
import pathlib

from harness.run.cache import build_dir_once, cache_root, write_json_once

BUILD_VERSION = "1"
DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
PROMPT_TEMPLATE = ("Summarize the following news article in 128 tokens. Please output the summary only, "
                   "without any other text.\n\nArticle:\n{input}\n\nSummary:")
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
DEFAULT_SAMPLES = 32




def tiny_model_dir() -> pathlib.Path:
    """Path of the built model (config, weights, tokenizer); builds it on first use."""
    return build_dir_once(cache_root() / f"tiny-llama-v{BUILD_VERSION}", _build_model)


def tiny_dataset_path(samples: int = DEFAULT_SAMPLES) -> pathlib.Path:
    """A cnn_eval.json-format file for the tiny model's tokenizer; built on first use."""
    model_dir = tiny_model_dir()
    return write_json_once(model_dir / f"cnn_eval_tiny_{samples}.json", lambda: build_records(model_dir, samples))


def build_records(model_dir: pathlib.Path, samples: int) -> list[dict]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    articles = json.loads((DATA_DIR / "articles.json").read_text())
    records = []
    for i in range(samples):
        # 1 to 3 consecutive articles per sample, so prompt lengths vary like real ones
        parts = [articles[(i + k) % len(articles)] for k in range(1 + i % 3)]
        text = "\n\n".join(p["article"] for p in parts)
        prompt = PROMPT_TEMPLATE.format(input=text)
        records.append({"instruction": {"llama": PROMPT_TEMPLATE}, "input": text,
                        "tok_input": tokenizer.encode(prompt), "output": parts[0]["highlights"]})
    return records


def _build_model(out: pathlib.Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    articles = json.loads((DATA_DIR / "articles.json").read_text())
    corpus = [PROMPT_TEMPLATE] + [a["article"] for a in articles] + [a["highlights"] for a in articles]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1024, special_tokens=[BOS, EOS, EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    raw.train_from_iterator(corpus, trainer=trainer)
    bos_id, eos_id, eot_id = (raw.token_to_id(t) for t in (BOS, EOS, EOT))
    raw.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=EOS,
                                        pad_token=EOS, model_max_length=2048)
    out.mkdir(parents=True)
    tokenizer.save_pretrained(str(out))

    config = LlamaConfig(vocab_size=raw.get_vocab_size(), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=bos_id, eos_token_id=[eos_id, eot_id],
                         pad_token_id=eos_id, tie_word_embeddings=False)
    torch.manual_seed(20261126)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=[eos_id, eot_id],
                                               pad_token_id=eos_id)
    model.save_pretrained(str(out))


