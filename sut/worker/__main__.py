"""Serve one engine over gRPC until SIGTERM/SIGINT.

Prints `READY host:port` on stdout once the engine has started and health reports SERVING; with
--port 0 the kernel picks the port and this line says which.
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

from sut.engines import engine_names, load_engine_class
from sut.engines.base import EngineError
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.wire import SERVER_OPTIONS
from sut.worker.service import BackendService


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    base = argparse.ArgumentParser(prog="python -m sut.worker", add_help=False)
    base.add_argument("--engine", default="hf", choices=engine_names())
    known, _ = base.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog="python -m sut.worker", parents=[base],
                                     description="Serve one inference engine to the harness over gRPC.")
    parser.add_argument("--model", required=True, help="model directory (config.json; weights unless dummy)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=50051, help="port (0: pick a free one; default 50051)")
    parser.add_argument("--worker-id", default=None, help="name shown in the harness (default host:port)")
    parser.add_argument("--log-level", default="WARNING")
    load_engine_class(known.engine).add_arguments(parser)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> int:
    engine = load_engine_class(args.engine).from_args(args)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health_service = health.aio.HealthServicer()
    await health_service.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    try:
        port = server.add_insecure_port(f"{args.host}:{args.port}")
    except RuntimeError as exc:
        print(f"worker: cannot listen on --host {args.host} --port {args.port}: {exc}", file=sys.stderr)
        return 2
    address = f"{args.host}:{port}"
    service = BackendService(engine, args.worker_id or f"{socket.gethostname()}:{port}")
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
    service.ready = True
    await health_service.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"READY {address}", flush=True)
    await stop.wait()
    await health_service.enter_graceful_shutdown()
    await server.stop(grace=2)
    await engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(serve(args))
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
