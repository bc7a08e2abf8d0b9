"""Punkt sentence splitting as nltk 3.8.1 does it (the version MLCommons' evaluation.py pins), on the
installed nltk.

Between nltk 3.8.1 and the nltk we install (3.10.4) the Punkt algorithm itself did not change, but two
things around it did (compare `nltk/tokenize/punkt.py` of the two wheels on PyPI):

1. Curly quotes and guillemets (U+2018, U+2019, U+201C, U+201D, U+00AB, U+00BB) were added to the
   characters that cannot be part of a word (`PunktLanguageVars._re_non_word_chars`) and to the
   closing punctuation that is realigned into the sentence before a break
   (`PunktLanguageVars.re_boundary_realignment`). So 3.10 ends a sentence at `.”` or `.»`; 3.8.1 does
   not.
2. Every regular expression now goes through `nltk.redos.compile`, i.e. the third-party `regex`
   engine, whose `\\s`, `\\w` and `\\d` differ from the stdlib `re` that 3.8.1 uses (e.g. U+001C..U+001F
   are whitespace to `re` only; combining marks are word characters to `regex` only; `²` is a word
   character to `re` only).

The classes below keep the installed tokenizer's code and put back exactly 3.8.1's patterns, compiled
with the stdlib `re`. The patterns are copied from nltk 3.8.1 (Apache License 2.0, (C) NLTK Project).
"""
from __future__ import annotations

import re

from nltk.tokenize.punkt import PunktLanguageVars, PunktSentenceTokenizer, PunktToken

# nltk 3.8.1, PunktLanguageVars (sent_end_chars = (".", "?", "!"))
_RE_SENT_END_CHARS = "[%s]" % re.escape(".?!")
_RE_NON_WORD_CHARS = r"(?:[)\";}\]\*:@\'\({\[%s])" % re.escape("".join(sorted({"?", "!"})))
_RE_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"
_RE_MULTI_CHAR_PUNCT = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_TOKENIZE_FMT = r"""(
        %(MultiChar)s
        |
        (?=%(WordStart)s)\S+?  # Accept word characters until end is found
        (?= # Sequences marking a word's end
            \s|                                 # White-space
            $|                                  # End-of-string
            %(NonWord)s|%(MultiChar)s|          # Punctuation
            ,(?=$|\s|%(NonWord)s|%(MultiChar)s) # Comma if at end of word
        )
        |
        \S
    )"""
_PERIOD_CONTEXT_FMT = r"""
        %(SentEndChars)s             # a potential sentence ending
        (?=(?P<after_tok>
            %(NonWord)s              # either other punctuation
            |
            \s+(?P<next_tok>\S+)     # or whitespace and some other token
        ))"""

RE_BOUNDARY_REALIGNMENT = re.compile(r'["\')\]}]+?(?:\s+|(?=--)|$)', re.MULTILINE)
RE_WORD_TOKENIZER = re.compile(_WORD_TOKENIZE_FMT % {"NonWord": _RE_NON_WORD_CHARS, "MultiChar": _RE_MULTI_CHAR_PUNCT,
                                                     "WordStart": _RE_WORD_START}, re.UNICODE | re.VERBOSE)
RE_PERIOD_CONTEXT = re.compile(_PERIOD_CONTEXT_FMT % {"NonWord": _RE_NON_WORD_CHARS,
                                                      "SentEndChars": _RE_SENT_END_CHARS}, re.UNICODE | re.VERBOSE)
_RE_NON_PUNCT = re.compile(r"[^\W\d]", re.UNICODE)


class LanguageVars381(PunktLanguageVars):
    """English language variables of nltk 3.8.1 (stdlib `re`, no curly quotes or guillemets)."""

    __slots__ = ()
    re_boundary_realignment = RE_BOUNDARY_REALIGNMENT

    @property
    def _re_non_word_chars(self):
        return _RE_NON_WORD_CHARS

    def _word_tokenizer_re(self):
        return RE_WORD_TOKENIZER

    def word_tokenize(self, s):
        return RE_WORD_TOKENIZER.findall(s)

    def period_context_re(self):
        return RE_PERIOD_CONTEXT


class Token381(PunktToken):
    """PunktToken with nltk 3.8.1's token patterns (stdlib `re`)."""

    __slots__ = ()
    _RE_ELLIPSIS = re.compile(r"\.\.+$")
    _RE_NUMERIC = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
    _RE_INITIAL = re.compile(r"[^\W\d]\.$", re.UNICODE)
    _RE_ALPHA = re.compile(r"[^\W\d]+$", re.UNICODE)

    @property
    def is_non_punct(self):
        return _RE_NON_PUNCT.search(self.type)


def sentence_tokenizer_381(params) -> PunktSentenceTokenizer:
    """A PunktSentenceTokenizer on `params` that splits as nltk 3.8.1's does."""
    tokenizer = PunktSentenceTokenizer(lang_vars=LanguageVars381(), token_cls=Token381)
    tokenizer._params = params  # what PunktSentenceTokenizer(params) does (train() returns given parameters)
    return tokenizer
