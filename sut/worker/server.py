"""Serve one engine over gRPC until SIGTERM/SIGINT.

Prints `READY host:port` on stdout once the engine has started and health reports SERVING; with
--port 0 the kernel picks the port and this line says which.

The worker owns its port (no SO_REUSEPORT): a second worker on a port in use exits 2. On an
address other hosts can reach it needs --auth-token-file (best with --tls-cert/--tls-key) or
--tls-client-ca, or --insecure on a trusted network.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sut.build_info import BuildInfoError, code_revision
from sut.engines import engine_names, load_engine_class
from sut.engines.base import EngineError
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.security import (AuthInterceptor, SecurityError, check_exposure, is_loopback, read_token,
                          server_credentials)
from sut.wire import WORKER_SERVER_OPTIONS
from sut.worker.identity import worker_identity
from sut.worker.node import node_fingerprint
from sut.worker.preset import PresetError, load_preset, preset_argv
from sut.worker.service import BackendService
from sut.worker.validation import DEFAULT_MAX_NEW_TOKENS_CAP


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Raises PresetError (one line) for a bad --preset."""
    argv = list(sys.argv[1:] if argv is None else argv)
    base = argparse.ArgumentParser(prog="python -m sut.worker", add_help=False)
    base.add_argument("--engine", default=None, choices=engine_names(), help="engine (default hf, or the preset's)")
    base.add_argument("--preset", default=None, metavar="FILE",
                      help="tuned preset (python -m harness tune): its engine args are defaults that flags override")
    known, _ = base.parse_known_args(argv)
    preset = load_preset(known.preset) if known.preset else None
    if preset and known.engine and known.engine != preset["engine"]:
        raise PresetError(f"--preset {known.preset}: key 'engine' is {preset['engine']!r} but --engine is "
                          f"{known.engine!r}")
    known.engine = known.engine or (preset["engine"] if preset else "hf")
    if known.engine not in engine_names():
        raise PresetError(f"--preset {known.preset}: key 'engine' {known.engine!r} is not one of "
                          f"{', '.join(engine_names())}")
    parser = argparse.ArgumentParser(prog="python -m sut.worker", parents=[base],
                                     description="Serve one inference engine to the harness over gRPC.")
    parser.add_argument("--model", required=True, help="model directory (config.json; weights unless dummy)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: pick a free one; default 50051)")
    parser.add_argument("--worker-id", default=None, help="name shown in the harness (default host:port)")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--max-new-tokens-cap", type=int, default=DEFAULT_MAX_NEW_TOKENS_CAP,
                        help=f"refuse requests asking for more new tokens (default {DEFAULT_MAX_NEW_TOKENS_CAP})")
    sec = parser.add_argument_group("security (needed on any address but loopback)")
    sec.add_argument("--auth-token-file", default=None, metavar="FILE",
                     help="file holding the shared token clients must send (authorization: Bearer)")
    sec.add_argument("--tls-cert", default=None, metavar="FILE", help="server certificate chain (PEM)")
    sec.add_argument("--tls-key", default=None, metavar="FILE", help="server private key (PEM)")
    sec.add_argument("--tls-client-ca", default=None, metavar="FILE",
                     help="require client certificates signed by this CA (PEM)")
    sec.add_argument("--insecure", action="store_true",
                     help="allow a non-loopback address without authentication (trusted networks only)")
    load_engine_class(known.engine).add_arguments(parser)
    if preset:
        argv = ["--engine", known.engine, *preset_argv(preset, known.preset, set(parser._option_string_actions)),
                *argv]
    args = parser.parse_args(argv)
    args.engine = known.engine
    return args


class _Security:
    """The worker's security flags, read and checked before anything heavy starts."""

    def __init__(self, args: argparse.Namespace):
        if (args.tls_cert is None) != (args.tls_key is None):
            raise SecurityError("--tls-cert and --tls-key go together")
        if args.tls_client_ca and not args.tls_cert:
            raise SecurityError("--tls-client-ca needs --tls-cert/--tls-key (client certificates need TLS)")
        self.interceptors = [AuthInterceptor(read_token(args.auth_token_file))] if args.auth_token_file else []
        self.credentials = (server_credentials(args.tls_cert, args.tls_key, args.tls_client_ca)
                            if args.tls_cert else None)
        authenticated = bool(self.interceptors) or bool(args.tls_client_ca)
        self.warnings = [w for w in [check_exposure(args.host, authenticated, args.insecure)] if w]
        if self.interceptors and self.credentials is None and not is_loopback(args.host):
            self.warnings.append(f"WARNING: --host {args.host}: the token travels in cleartext; "
                                 f"add --tls-cert/--tls-key")


async def serve(args: argparse.Namespace) -> int:
    if args.max_new_tokens_cap < 1:
        raise ValueError(f"--max-new-tokens-cap {args.max_new_tokens_cap}: must be >= 1")
    security = _Security(args)
    for warning in security.warnings:
        print(f"worker: {warning}", file=sys.stderr, flush=True)
    engine = load_engine_class(args.engine).from_args(args)
    server = grpc.aio.server(options=WORKER_SERVER_OPTIONS, interceptors=security.interceptors)
    health_service = health.aio.HealthServicer()
    await health_service.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        if security.credentials is not None:
            port = server.add_secure_port(f"{args.host}:{args.port}", security.credentials)
        else:
            port = server.add_insecure_port(f"{args.host}:{args.port}")
    except RuntimeError:
        print(f"worker: cannot listen on --host {args.host} --port {args.port}: the port is in use (another "
              f"worker?) or the address is not this host's", file=sys.stderr)
        return 2
    address = f"{args.host}:{port}"
    service = BackendService(engine, args.worker_id or f"{socket.gethostname()}:{port}",
                             max_new_tokens_cap=args.max_new_tokens_cap)
    pb_grpc.add_BackendServicer_to_server(service, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    await server.start()
    print(f"LISTENING {address} (engine {args.engine} starting)", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
    except (EngineError, OSError, ValueError) as exc:
        print(f"worker {address}: engine {args.engine} failed to start: {exc}", file=sys.stderr)
        await server.stop(0)
        return 2
    service.identity = await asyncio.to_thread(worker_identity, args.model, engine.info())
    service.identity.update(await asyncio.to_thread(node_fingerprint))  # node.*: shown, never pinned
    service.ready = True
    await health_service.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"READY {address}", flush=True)
    await stop.wait()
    await health_service.enter_graceful_shutdown()
    await server.stop(grace=2)
    await engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        code_revision()  # a malformed build stamp fails now, not after the engine's minutes of loading
    except (PresetError, BuildInfoError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # python -m sut.worker.server works too
    sys.exit(main())
