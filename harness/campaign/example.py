"""`python -m harness campaign --example`: a miniature campaign on the embedded default model
(SmolLM2-135M-Instruct on two local CPU workers), with SMOKE settings: 8 samples, at most 16 new
tokens, no minimum duration, Server at 1 qps. It runs performance and accuracy for Offline and
Server, packages them (marked UNOFFICIAL) and checks the tree. TEST06 is left out: its audit config
fixes 100 queries, about 80 s of prompt processing per scenario on 2 CPU cores, which would break
the 3-minute budget (the sim campaign and the tests run it). The check must reject the tree for
the smoke settings only (SMOKE_PROBLEMS); any other problem fails the example (exit 1).
"""
from __future__ import annotations

import json
import re

from rich.console import Console

from harness.campaign.config import CampaignConfig, validate

SOURCE = "<embedded example campaign>"

EXAMPLE = {
    "benchmark": "llama3.1-8b",
    "scenarios": ["Offline", "Server"],
    "steps": ["performance", "accuracy", "package", "check"],
    "output": "campaign-example",
    "organisation": "Example",
    "division": "closed",
    "smoke": True,
    "allow_unofficial": True,
    "workers": {"local": {"engine": "hf", "count": 2}},
    "loadgen": {"min_duration_ms": 0, "min_query_count": 8, "offline_target_qps": 10,
                "target_qps": {"Server": 1.0}},
    "run": {"samples": 8, "max_new_tokens": 16, "min_new_tokens": 2},
    "system": {
        "system_name": "example-cpu", "status": "available", "system_type": "datacenter",
        "host_processors_per_node": "1", "host_storage_capacity": "example", "host_storage_type": "example",
        "accelerators_per_node": "none (CPU workers)", "accelerator_model_name": "none (CPU workers)",
        "accelerator_memory_capacity": "n/a", "host_processor_frequency": "n/a", "host_processor_caches": "n/a",
        "host_memory_configuration": "example", "host_processor_interconnect": "n/a", "host_networking": "loopback",
        "host_networking_topology": "single host", "accelerator_frequency": "n/a",
        "accelerator_host_interconnect": "n/a", "accelerator_interconnect": "n/a",
        "accelerator_interconnect_topology": "n/a", "accelerator_memory_configuration": "n/a",
        "accelerator_on-chip_memories": "n/a", "cooling": "air", "hw_notes": "smoke example",
        "sw_notes": "python -m harness campaign --example", "host_network_card_count": "1",
        "system_type_detail": "smoke example, not a submission system"},
}

# what the check says about a tree made with the smoke settings above; each one follows from them
SMOKE_PROBLEMS = {
    r"min_duration is \d+ ms; a submission needs >= 600000 ms": "min_duration 0 (a submission: 600 s)",
    r"performance_sample_count is \d+; needs >= 13368": "8 samples (a submission: 13368)",
    r"Offline samples_per_query is \d+; needs >= 13368": "8 samples per Offline query",
    r"the accuracy run covered \d+ samples; needs all 13368": "accuracy on 8 samples",
    r"accuracy.txt: (rouge\w*|gen_len|gen_num) \S+ does not meet": "a 135M model on 8 samples, 16 tokens, "
                                                                    "against Llama-3.1-8B's targets",
    r"early stopping not met": "8 Server queries are too few for early stopping",
    r"LoadGen result is INVALID": "LoadGen's INVALID for the short Server run (too few queries)",
    r"p99 (TTFT|TPOT) \S+ ns is not below": "CPU workers: a 135M model on 2 cores is not a GPU",
    r"/TEST06: missing$": "TEST06 left out of the example (100 queries: minutes on 2 CPU cores)",
}


def config(output: str | None) -> tuple[CampaignConfig, str, str]:
    data = dict(EXAMPLE, output=output or EXAMPLE["output"])
    return validate(data, SOURCE), SOURCE, json.dumps(data, sort_keys=True)


def classify(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """(smoke reason -> first line showing it, lines that are not explained by the smoke settings)."""
    seen, other = {}, []
    for line in lines:
        reason = next((why for pattern, why in SMOKE_PROBLEMS.items() if re.search(pattern, line)), None)
        if reason is None:
            other.append(line)
        else:
            seen.setdefault(reason, line)
    return seen, other


def verdict(console: Console, campaign, code: int) -> int:
    """The example passes when every step finished and the check rejected the tree for smoke values only."""
    from harness.campaign.state import CampaignState
    state = CampaignState(campaign.out)
    records = {step.id: state.step(step.id) for step in campaign.steps}
    if code == 130:
        return code
    unfinished = [sid for sid, r in records.items() if r.get("status") not in ("passed", "invalid")]
    lines = records.get("check", {}).get("data", {}).get("lines")
    if unfinished or lines is None:
        console.print(f"[red]example failed[/]: steps not finished: {', '.join(unfinished) or 'check'}")
        return 1
    seen, other = classify(lines)
    console.print("[bold]example:[/] the check rejects the tree for its smoke settings:")
    for reason in seen:
        console.print(f"  - {reason}", highlight=False)
    if other:
        console.print("[red]example failed[/]: problems the smoke settings do not explain:")
        for line in other:
            console.print(f"  {line}", markup=False, highlight=False)
        return 1
    console.print(f"[green]example OK[/]: packaged tree {campaign.out / 'submission'} (UNOFFICIAL: smoke run)")
    return 0

