"""The scenarios a run can name, and what each one means for LoadGen and for the dispatcher."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    loadgen_scenario: str      # LoadGen has no Interactive: it is Server with its own model name
    needs_first_token: bool    # FirstTokenComplete is reported (TTFT is measured)
    default_policy: str        # what --policy auto means
    server_like: bool          # queries arrive one by one: issue schedule written, early stopping applies
    one_query: bool            # every sample goes out in one query (samples_per_query >= the dataset)
    default_model_name: str    # LoadGen model name when --model-name is not given


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("Offline", "Offline", False, "pull", False, True, "llama3_1-8b"),
    Scenario("Server", "Server", True, "least-work", True, False, "llama3_1-8b"),
    Scenario("SingleStream", "SingleStream", True, "least-work", True, False, "llama3_1-8b-edge"),
    Scenario("Interactive", "Server", True, "least-work", True, False, "llama3_1-8b-interactive"),
)}
