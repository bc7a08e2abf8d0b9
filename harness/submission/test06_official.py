"""What MLCommons' compliance/TEST06/run_verification.py itself would print for a log.

Our TEST06 (harness.submission.compliance) is stricter on purpose: the official script defaults to Llama-2's EOS
id 2, and an id given on its command line reaches the comparison as text, so it never equals a token
and the EOS check passes vacuously; its first-token check compares with zip(), so an empty or too long
first-token payload passes; its EOS loop never looks at position 0. When its verdict differs from
ours, write_test06 puts its lines in TEST06/official_verdict.txt next to verify_accuracy.txt.
"""
from __future__ import annotations

import numpy as np

OFFICIAL_DEFAULT_EOS = 2  # run_verification.py: --eos_token_id default (Llama-2's EOS)
FILE_NAME = "official_verdict.txt"


def _tokens(hex_data: str, dtype: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex_data), dtype=np.dtype(dtype).newbyteorder("<"))


def official_checks(entries: list[dict], scenario: str, eos_token_id=OFFICIAL_DEFAULT_EOS,
                    dtype: str = "int32") -> tuple[bool | None, bool, bool]:
    """(first token, EOS, sample length) as run_verification.py computes them; first token None: skipped."""
    first = None
    if scenario != "Offline":
        first = True
        for sample in entries:
            data, token_data = _tokens(sample["data"], dtype), _tokens(sample.get("token_data", ""), dtype)
            if any(t1 != t2 for t1, t2 in zip(data, token_data)):
                first = False
                break
    eos = True
    for sample in entries:
        data = _tokens(sample["data"], dtype)
        i, n_eos = data.shape[0] - 1, 0
        while i > 0:
            if data[i] == eos_token_id:  # a str id (from its command line) never matches
                n_eos += 1
            if n_eos >= 2:
                eos = False
                break
            if data[i] != eos_token_id:
                break
            i -= 1
        if not eos:
            break
    length = all(len(_tokens(s["data"], dtype)) == int(s["token_count"]) for s in entries if "token_count" in s) \
        and all("token_count" in s for s in entries)
    return first, eos, length


def official_text(first: bool | None, eos: bool, length: bool) -> str:
    return (f"First token check pass: {'Skipped' if first is None else first}\nEOS check pass: {eos}\n"
            f"Sample length check pass: {length}\nTEST06 verification complete\n")


HEADER = ("# What MLCommons' compliance/TEST06/run_verification.py would print for this log (default\n"
          "# --eos_token_id 2, Llama-2's EOS; an id given on its command line is compared as text and never\n"
          "# matches). verify_accuracy.txt holds our stricter verdict (EOS ids of the model, compared as\n"
          "# integers; a first-token payload must be a non-empty prefix of the output).\n")
