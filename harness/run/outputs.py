"""What the run's outputs say, in words: one sample's text beside the numbers, and LoadGen errors
that come from the model's behaviour (a one-token answer) explained."""
from __future__ import annotations

import threading

from sut.cluster import LoadGenResponder
from sut.wire import unpack_tokens

ONE_TOKEN_ERROR = "Number of tokens need to be greater than 1"


class KeepingResponder(LoadGenResponder):
    """LoadGen's responder that also keeps the answers of QSL indices below `keep` (or the first one)."""

    def __init__(self, lg, keep: int = 4):
        super().__init__(lg)
        self.keep = keep
        self.outputs: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def complete(self, items) -> None:
        with self._lock:
            for query, tokens in items:
                if (query.index < self.keep or not self.outputs) and query.index not in self.outputs:
                    self.outputs[query.index] = unpack_tokens(tokens).tolist()
        super().complete(items)


def sample_lines(outputs: dict[int, list[int]], tokenizer_dir: str, eos_ids, max_new_tokens: int,
                 width: int = 400) -> list[str]:
    """One answer decoded (the lowest QSL index kept), how it ended, and its length."""
    if not outputs:
        return []
    from transformers import AutoTokenizer

    index = min(outputs)
    tokens = outputs[index]
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        text = " ".join(tokenizer.decode(tokens, skip_special_tokens=True).split())
    except (OSError, ValueError) as exc:
        return [f"sample output (qsl_idx {index}): {len(tokens)} tokens, not decoded ({exc})"]
    if tokens and tokens[-1] in set(eos_ids or ()):
        ending = "ended by EOS"
    elif len(tokens) >= max_new_tokens:
        ending = f"cut at max_new_tokens {max_new_tokens}"
    else:
        ending = "ended"
    if len(text) > width:
        text = text[:width] + " ..."
    return [f"sample output (qsl_idx {index}, {len(tokens)} tokens, {ending}):", f"  {text}"]


def explain_errors(errors: list[str], num_errors: int) -> list[str]:
    """Plain words for LoadGen errors a real model causes."""
    lines = []
    if any(ONE_TOKEN_ERROR in e for e in errors):
        lines.append(f"LoadGen logged {num_errors} error(s) \"{ONE_TOKEN_ERROR}\": the model answered some "
                     f"samples with a single token (n_tokens = 1, e.g. a lone EOS, or --max-new-tokens 1). The "
                     f"MLPerf rules' min_new_tokens = 1 allows such an answer, but LoadGen counts n_tokens < 2 as "
                     f"an error (time per output token needs two tokens), so the run is not accepted; "
                     f"--min-new-tokens 2 avoids it")
    return lines
