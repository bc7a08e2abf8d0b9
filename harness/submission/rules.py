"""What MLCommons' submission checker (v6.1) requires of any tree (systems, measurements, logs, seeds);
shared by package and check. Per-benchmark rules live in harness.benchmarks."""
from __future__ import annotations

SYSTEM_REQUIRED_FIELDS = [
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity", "host_storage_capacity",
    "host_storage_type", "accelerators_per_node", "accelerator_model_name", "accelerator_memory_capacity",
    "framework", "operating_system", "system_type", "other_software_stack", "host_processor_frequency",
    "host_processor_caches", "host_memory_configuration", "host_processor_interconnect", "host_networking",
    "host_networking_topology", "accelerator_frequency", "accelerator_host_interconnect", "accelerator_interconnect",
    "accelerator_interconnect_topology", "accelerator_memory_configuration", "accelerator_on-chip_memories",
    "cooling", "hw_notes", "sw_notes", "host_network_card_count", "system_type_detail",
]
SYSTEM_NONEMPTY_FIELDS = [
    "division", "submitter", "system_type", "status", "system_name", "number_of_nodes",
    "host_processor_model_name", "host_processors_per_node", "host_processor_core_count", "host_memory_capacity",
    "host_memory_configuration", "host_storage_capacity", "host_storage_type", "host_networking",
    "host_network_card_count", "host_networking_topology", "accelerators_per_node", "accelerator_model_name",
    "accelerator_memory_capacity", "accelerator_host_interconnect", "accelerator_memory_configuration",
    "accelerator_interconnect", "cooling", "framework", "operating_system", "other_software_stack",
]
NETWORK_REQUIRED_FIELDS = [
    "is_network", "network_type", "network_media", "network_rate", "nic_loadgen", "number_nic_loadgen",
    "net_software_stack_loadgen", "network_protocol", "number_connections", "nic_sut", "number_nic_sut",
    "net_software_stack_sut", "network_topology",
]
SYSTEM_STATUS = ("available", "preview", "rdi")
SYSTEM_TYPES = ("datacenter", "edge", "datacenter,edge", "edge,datacenter")
DIVISIONS = ("closed", "open", "network")
MEASUREMENT_FIELDS = ["input_data_types", "retraining", "starting_weights_filename", "weight_data_types",
                      "weight_transformations"]

MIN_DURATION_MS = 600000
ROUND_SEEDS = {"effective_qsl_rng_seed": 2085463073848966840, "effective_sample_index_rng_seed": 2747215439041700203,
               "effective_schedule_rng_seed": 16159082839903944936}  # v6.1, built into mlcommons-loadgen >= 6.0.16
MAX_ACCURACY_LOG_BYTES = 10 * 1024
VIEWABLE_BYTES = 4096
TEST06_PASS_LINES = ("First token check pass: True", "EOS check pass: True", "Sample length check pass: True",
                     "TEST06 verification complete")


def required_system_fields(division: str) -> list[str]:
    return SYSTEM_REQUIRED_FIELDS + (NETWORK_REQUIRED_FIELDS if division == "network" else [])


def empty_system_fields(system: dict) -> list[str]:
    """The checker's rule is `not value`: 0 and "" both count as no answer."""
    return [f for f in SYSTEM_NONEMPTY_FIELDS if f in system and not system[f]]
