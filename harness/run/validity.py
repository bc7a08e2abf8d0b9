"""Which MLPerf division a run's results can go to, from what its workers said at first contact.

gRPC workers and OpenAI-compatible endpoints that take the prompt as token ids and return the
generated ids are interchangeable: the same ids reach the engine and LoadGen, nothing is batched,
padded or re-processed at the coordinator. An endpoint fed text (the prompt's ids detokenized, then
re-tokenized by the server: not always the same ids, BOS may be added again) changes the reference
pre-processing; one whose output ids are counted here by re-tokenizing its text logs ids the model
did not necessarily generate, and its token counts (the metric) are an estimate. Either makes the
result Open division only, and not comparable to token-exact runs. Where LoadGen runs on another
machine than the accelerators, the Network division's rules apply in any case (the reference's
section 6): this module cannot see that, and says so.
"""
from __future__ import annotations

from sut.openai_api.options import ARG_PROMPT, KEY_OUTPUT_IDS

NETWORK_NOTE = ("a worker or endpoint on another machine than LoadGen makes this a Network division submission "
                "(Name() 'Network SUT', is_network in the system JSON)")


def result_validity(infos: list[dict]) -> dict:
    reasons = []
    for info in infos:
        versions = info.get("versions") or {}
        args = info.get("engine_args") or {}
        where = info.get("address") or info.get("worker_id")
        if args.get(ARG_PROMPT) == "text":
            reasons.append(f"{where}: prompts sent as text (detokenized here, re-tokenized by the server), not "
                           f"the dataset's token ids")
        if versions.get(KEY_OUTPUT_IDS) == "retokenized":
            reasons.append(f"{where}: output ids counted by re-tokenizing the server's text, not the ids it "
                           f"generated")
    closed = not reasons
    return {"closed": closed, "open": True, "comparable": closed,
            "divisions": ["closed", "open"] if closed else ["open"],
            "reasons": reasons, "note": NETWORK_NOTE}
