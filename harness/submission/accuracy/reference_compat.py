"""Detokenization as transformers 4.46.2 does it (the version MLCommons' evaluation.py pins), on ours.

evaluation.py decodes with `tokenizer.batch_decode(ids, skip_special_tokens=True)`. For a fast
(tokenizers-backed) tokenizer, such as Llama-3.1's, transformers 4.46.2 does, per sample
(`PreTrainedTokenizerFast._decode`):

    text = self._tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)
    if self.clean_up_tokenization_spaces:        # tokenizer_config.json's value, default False
        text = self.clean_up_tokenization(text)

transformers 5.x no longer applies the clean-up to BPE tokenizers even when the config asks for it,
so we decode with the tokenizers backend and apply 4.46.2's clean-up ourselves, when the config asks.
"""
from __future__ import annotations

# transformers 4.46.2, PreTrainedTokenizerBase.clean_up_tokenization: these replacements, in this order
CLEAN_UP_REPLACEMENTS = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)
TRANSFORMERS_VERSION = "4.46.2"
NLTK_VERSION = "3.8.1"


def clean_up_tokenization(out_string: str) -> str:
    """transformers 4.46.2's `clean_up_tokenization`, character for character."""
    for old, new in CLEAN_UP_REPLACEMENTS:
        out_string = out_string.replace(old, new)
    return out_string


def cleanup_requested(tokenizer) -> bool:
    """What 4.46.2 uses: `clean_up_tokenization_spaces` from tokenizer_config.json, False when absent."""
    init_kwargs = getattr(tokenizer, "init_kwargs", None) or {}
    if "clean_up_tokenization_spaces" in init_kwargs:
        return bool(init_kwargs["clean_up_tokenization_spaces"])
    return bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))


def batch_decode(tokenizer, sequences: list[list[int]], cleanup: bool | None = None) -> list[str]:
    """`tokenizer.batch_decode(sequences, skip_special_tokens=True)` as transformers 4.46.2 returns it."""
    cleanup = cleanup_requested(tokenizer) if cleanup is None else cleanup
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a tokenizers-backed (fast) tokenizer; "
                        f"only the fast-tokenizer decoding of transformers {TRANSFORMERS_VERSION} is reproduced")
    texts = backend.decode_batch(sequences, skip_special_tokens=True)
    return [clean_up_tokenization(t) for t in texts] if cleanup else texts


def note(tokenizer) -> dict:
    """The `reference_compat` entry of accuracy.json: which reference behaviours were applied."""
    cleanup = cleanup_requested(tokenizer)
    return {
        "detokenization": f"transformers {TRANSFORMERS_VERSION} fast-tokenizer decode, skip_special_tokens=True",
        "clean_up_tokenization_spaces": cleanup,
        "clean_up": (f"transformers {TRANSFORMERS_VERSION} clean_up_tokenization applied (tokenizer_config.json asks "
                     f"for it)" if cleanup else "none (tokenizer_config.json does not ask for it)"),
        "sentence_split": f"nltk {NLTK_VERSION} sent_tokenize rules (Punkt, English parameters of english.pickle)",
    }
