"""Checks made before any worker is contacted or LoadGen starts, each failing with one line that
names the flag, file or field: worker addresses, the output folder, token ids that fit LoadGen's
int32 responses and the wire, free disk space for LoadGen's logs (a full disk truncates them
silently), and, once the workers answer, one code revision among them."""
from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

from sut.links import link_type
from sut.worker.identity import KEY_REVISION

INT32_LIMIT = 2 ** 31
SAFETY_FACTOR = 2.0
FIXED_BYTES = 16 * 1024 ** 2        # detail/summary logs, manifest, worker logs, user.conf
TRACE_BYTES_PER_SAMPLE = 1024       # LoadGen trace: ~0.75-1 KB per sample (loadgen-api.md section 4)
RECORD_BYTES_PER_SAMPLE = 64        # issue_schedule.json and the manifest's per-sample accounting


class PreflightError(ValueError):
    pass


def parse_workers(text: str) -> list[str]:
    """`HOST:PORT[,HOST:PORT...]`: each well formed, port 1..65535, no address twice. An address
    with a scheme (an OpenAI-compatible endpoint, `openai+http://HOST:PORT/v1`) is checked by its
    link type (`sut.links`)."""
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    if not addresses:
        raise PreflightError(f"--workers {text!r}: no HOST:PORT given")
    seen = set()
    for address in addresses:
        try:
            kind = link_type(address)
            if kind is not None:
                kind.check_address(address)
        except ValueError as exc:
            raise PreflightError(f"--workers: {exc}") from None
        if kind is not None:
            if address in seen:
                raise PreflightError(f"--workers: {address} is given twice (each worker would get twice the work)")
            seen.add(address)
            continue
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port:
            raise PreflightError(f"--workers: {address!r} is not HOST:PORT")
        if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
            raise PreflightError(f"--workers: {address!r}: write an IPv6 host in brackets, as [::1]:50051")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise PreflightError(f"--workers: {address!r}: port {port!r} is not a number in 1..65535")
        key = (host.lower(), int(port))
        if key in seen:
            raise PreflightError(f"--workers: {address} is given twice (each worker would get twice the work)")
        seen.add(key)
    return addresses


def check_output(parent: str | pathlib.Path) -> None:
    """--output exists or can be made, and a file can be written in it."""
    parent = pathlib.Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise PreflightError(f"--output {parent}: not writable ({exc.strerror or exc})") from None


def check_token_ids(dataset) -> None:
    """Token ids travel as int32 (the wire, LoadGen's responses): 0 <= id < 2^31."""
    for i, tokens in enumerate(dataset.tok_inputs):
        low, high = min(tokens), max(tokens)
        if low < 0 or high >= INT32_LIMIT:
            bad = low if low < 0 else high
            raise PreflightError(f"{dataset.path}: record {i}: field 'tok_input' item {tokens.index(bad)} is {bad}, "
                                 f"outside the token id range 0..{INT32_LIMIT - 1}")


def issued_samples(settings, scenario_server_like: bool, accuracy: bool, dataset_size: int) -> int:
    """About how many samples LoadGen will issue (each one a line or more in its logs)."""
    if accuracy:
        return dataset_size
    count = max(settings.min_query_count, 1)
    seconds = settings.min_duration_ms / 1000
    if scenario_server_like:
        rate = settings.server_target_qps
    else:
        rate = settings.offline_expected_qps * 1.1
    return int(max(count, rate * seconds, dataset_size))


def estimate_log_bytes(samples: int, accuracy: bool, max_new_tokens: int, trace: bool) -> int:
    """Bytes LoadGen and the harness will write: the accuracy log holds every response as hex
    (2 characters per byte, 4 bytes per token) plus ~100 bytes of fields; the trace ~1 KB per sample."""
    total = FIXED_BYTES + samples * RECORD_BYTES_PER_SAMPLE
    if accuracy:
        total += samples * (2 * 4 * max_new_tokens + 100)
    if trace:
        total += samples * TRACE_BYTES_PER_SAMPLE
    return int(total * SAFETY_FACTOR)


def check_disk_space(where: str | pathlib.Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(where).free
    if free < needed:
        raise PreflightError(f"--output {where}: {free / 1024 ** 2:.0f} MiB free, but {what} need about "
                             f"{needed / 1024 ** 2:.0f} MiB (estimate x{SAFETY_FACTOR:g}); a full disk truncates "
                             f"LoadGen's logs silently: free space or choose another --output")


def check_reachable(addresses: list[str], security=None, timeout_s: float = 10.0) -> None:
    """Every worker answers the standard health check with SERVING within `timeout_s` (the check
    needs no token; TLS settings from `security`, a sut.security.LinkSecurity). One line naming
    each worker that does not."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from sut.wire import CHANNEL_OPTIONS

    problems = []
    for address in addresses:
        credentials = security.channel_credentials() if security is not None else None
        options = CHANNEL_OPTIONS + (security.channel_options() if security is not None else [])
        channel = (grpc.secure_channel(address, credentials, options=options) if credentials
                   else grpc.insecure_channel(address, options=options))
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s,
                                                              wait_for_ready=True)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                problems.append(f"{address} is not serving yet ({status})")
        except grpc.RpcError as exc:
            problems.append(f"{address} unreachable ({exc.code().name} within {timeout_s:g} s)")
        finally:
            channel.close()
    if problems:
        raise PreflightError("workers: " + "; ".join(problems))


def check_revisions(infos: list[dict], allowed: bool) -> None:
    """Workers of one run serve the same code (their identity.revision), unless allowed."""
    revisions = {i.get("worker_id"): i.get("versions", {}).get(KEY_REVISION) for i in infos}
    if len(set(revisions.values()) - {None}) > 1 and not allowed:
        raise PreflightError("workers run different code revisions (" + ", ".join(
            f"{worker} {revision}" for worker, revision in revisions.items()) + "): install one revision on every "
            "host, or pass --allow-mixed-revisions")
