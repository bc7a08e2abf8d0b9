"""What the link's security costs: requests/s over one Generate stream to an in-process worker
with the instant sim engine, plaintext vs token vs TLS vs TLS+token.

python -m sut.worker.bench_security [--requests 20000] [--per-message 1,64] [--window 2000]
    [--cert-dir DIR | --make-certs DIR]

Client and worker share one process and one event loop (so the numbers are a ceiling of the
Python side's cost, not a network measurement). Needs `cryptography` to make a throwaway CA and
server certificate.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import os
import pathlib
import tempfile
import time

import grpc

from sut.engines.base import SamplingParams
from sut.engines.sim import SimEngine, SimTiming
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.security import AuthInterceptor, LinkSecurity, server_credentials
from sut.wire import CHANNEL_OPTIONS, WORKER_SERVER_OPTIONS, pack_tokens, params_to_proto
from sut.worker.service import BackendService

MODES = ("plaintext", "token", "tls", "tls+token")


def make_certificates(directory: pathlib.Path) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1/localhost, as PEM files in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def build(name, key, issuer=None, issuer_key=None, ca=False, sans=()):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(issuer_key or key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("bench-ca", ca_key, ca=True)
    server = build("worker", server_key, ca, ca_key,
                   sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    files = {"ca": ca.public_bytes(serialization.Encoding.PEM), "cert": server.public_bytes(serialization.Encoding.PEM),
             "key": server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
             "token": os.urandom(24).hex().encode()}
    paths = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths[name] = str(path)
    return paths


async def measure(mode: str, files: dict[str, str], requests: int, per_message: int, window: int,
                  prompt_len: int = 64, new_tokens: int = 4) -> float:
    """Requests per second through one Generate stream (send to last completion)."""
    tls, token = "tls" in mode, "token" in mode
    engine = SimEngine("sim", SimTiming(instant=True))
    await engine.start()
    service = BackendService(engine, "bench")
    service.ready = True
    interceptors = [AuthInterceptor(open(files["token"]).read().strip())] if token else []
    server = grpc.aio.server(options=WORKER_SERVER_OPTIONS, interceptors=interceptors)
    pb_grpc.add_BackendServicer_to_server(service, server)
    if tls:
        port = server.add_secure_port("127.0.0.1:0", server_credentials(files["cert"], files["key"]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    security = LinkSecurity.from_files(token_file=files["token"] if token else None,
                                       ca_file=files["ca"] if tls else None)
    credentials = security.channel_credentials()
    target = f"127.0.0.1:{port}"
    channel = (grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS) if credentials
               else grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS))
    prompt = pack_tokens(list(range(1, prompt_len + 1)))
    params = params_to_proto(SamplingParams(max_new_tokens=new_tokens))
    slots = asyncio.Semaphore(window)
    try:
        stub = pb_grpc.BackendStub(channel)
        await stub.Info(pb.InfoRequest(), metadata=security.call_metadata(), timeout=10)  # connect first

        async def messages():
            next_id = 0
            while next_id < requests:
                count = min(per_message, requests - next_id)
                for _ in range(count):
                    await slots.acquire()
                yield pb.ClientMessage(requests=[pb.GenerateRequest(request_id=next_id + i, prompt=prompt,
                                                                    params=params) for i in range(count)])
                next_id += count

        done = 0
        start = time.perf_counter()
        call = stub.Generate(messages(), metadata=security.call_metadata())
        async for message in call:
            for event in message.events:
                if event.HasField("completion") or event.HasField("error"):
                    if event.HasField("error"):
                        raise RuntimeError(event.error.message)
                    done += 1
                    slots.release()
            if done == requests:
                elapsed = time.perf_counter() - start
                call.cancel()
                break
        return requests / elapsed
    finally:
        await channel.close()
        await server.stop(0)
        await engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--per-message", default="1,64", help="requests per ClientMessage (comma list)")
    parser.add_argument("--window", type=int, default=2000, help="requests in flight at most")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the best is shown")
    parser.add_argument("--cert-dir", default=None,
                        help="use the files ca, cert, key and token in this directory (made by a run with "
                             "--make-certs DIR) instead of making them (which needs cryptography)")
    parser.add_argument("--make-certs", default=None, metavar="DIR", help="write the files to DIR and exit")
    args = parser.parse_args(argv)
    if args.make_certs:
        pathlib.Path(args.make_certs).mkdir(parents=True, exist_ok=True)
        make_certificates(pathlib.Path(args.make_certs))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-security-") as tmp:
        if args.cert_dir:
            files = {name: str(pathlib.Path(args.cert_dir) / name) for name in ("ca", "cert", "key", "token")}
        else:
            files = make_certificates(pathlib.Path(tmp))
        print(f"{args.requests} requests over one Generate stream, instant sim engine, in-process "
              f"(best of {args.repeat}, modes interleaved)")
        modes = args.modes.split(",")
        for per_message in (int(p) for p in args.per_message.split(",")):
            best = dict.fromkeys(modes, 0.0)
            for _ in range(args.repeat):  # modes interleaved, so a busy moment hits them alike
                for mode in modes:
                    rate = asyncio.run(measure(mode, files, args.requests, per_message, args.window))
                    best[mode] = max(best[mode], rate)
            for mode in modes:
                print(f"  {per_message:>3} req/message  {mode:<10} {best[mode]:9.0f} req/s  "
                      f"({best[mode] / best[modes[0]]:.2f}x {modes[0]})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
