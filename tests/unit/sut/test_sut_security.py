"""sut.security with real certificates (a CA, server certificates with SANs, a client certificate,
made here with `cryptography`): token and TLS on an in-process worker, health stays open, plaintext
and certificate-less clients fail; LinkSecurity, the loopback rule and the file checks."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import pathlib

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sut.engines.base import SamplingParams
from sut.engines.sim import SimEngine, SimTiming
from sut.proto import backend_pb2 as pb
from sut.proto import backend_pb2_grpc as pb_grpc
from sut.security import (AuthInterceptor, LinkSecurity, SecurityError, check_exposure, is_loopback, read_token,
                          server_credentials)
from sut.wire import CHANNEL_OPTIONS, WORKER_SERVER_OPTIONS, pack_tokens, params_to_proto, unpack_tokens
from sut.worker.service import BackendService

TOKEN = "s3cret-Token_0123456789"


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer_cert=None, issuer_key=None, *, ca=False, sans=(), client=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer_cert.subject if issuer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


class PKI:
    """Files of a throwaway CA, two server certificates and a client certificate."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        ca_key = _key()
        ca = _cert("test-ca", ca_key, ca=True)
        self.ca = self._write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
        server_key = _key()
        server = _cert("worker", server_key, ca, ca_key,
                       sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
        self.server_cert = self._write("server.pem", server.public_bytes(serialization.Encoding.PEM))
        self.server_key = self._write("server.key", _pem_key(server_key))
        named_key = _key()  # valid only for the name worker.test: needs a server name override
        named = _cert("worker.test", named_key, ca, ca_key, sans=[x509.DNSName("worker.test")])
        self.named_cert = self._write("named.pem", named.public_bytes(serialization.Encoding.PEM))
        self.named_key = self._write("named.key", _pem_key(named_key))
        client_key = _key()
        client = _cert("coordinator", client_key, ca, ca_key, client=True)
        self.client_cert = self._write("client.pem", client.public_bytes(serialization.Encoding.PEM))
        self.client_key = self._write("client.key", _pem_key(client_key))
        self.token = self._write("token", f"  {TOKEN}\n")

    def _write(self, name: str, data) -> str:
        path = self.root / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


class Worker:
    """A real grpc.aio server on 127.0.0.1 with the worker's security, serving an instant sim engine."""

    def __init__(self, credentials=None, token: str | None = TOKEN):
        self.credentials = credentials
        self.token = token

    async def __aenter__(self):
        engine = SimEngine("sim", SimTiming(instant=True, vocab_size=1000, max_model_len=256))
        await engine.start()
        service = BackendService(engine, "secure-worker")
        service.ready = True
        interceptors = [AuthInterceptor(self.token)] if self.token else []
        self.server = grpc.aio.server(options=WORKER_SERVER_OPTIONS, interceptors=interceptors)
        pb_grpc.add_BackendServicer_to_server(service, self.server)
        health_service = health.aio.HealthServicer()
        await health_service.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_service, self.server)
        if self.credentials is not None:
            self.port = self.server.add_secure_port("127.0.0.1:0", self.credentials)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def __aexit__(self, *exc):
        await self.server.stop(0)

    def channel(self, security: LinkSecurity, host: str = "127.0.0.1"):
        target = f"{host}:{self.port}"
        options = CHANNEL_OPTIONS + security.channel_options()
        credentials = security.channel_credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, credentials, options=options)


async def info(worker: Worker, security: LinkSecurity, metadata=None) -> pb.InfoReply:
    async with worker.channel(security) as channel:
        stub = pb_grpc.BackendStub(channel)
        return await stub.Info(pb.InfoRequest(), timeout=10,
                               metadata=security.call_metadata() if metadata is None else metadata)


async def generate_one(worker: Worker, security: LinkSecurity) -> list[int]:
    async with worker.channel(security) as channel:
        stub = pb_grpc.BackendStub(channel)
        request = pb.GenerateRequest(request_id=1, prompt=pack_tokens([1, 2, 3]),
                                     params=params_to_proto(SamplingParams(max_new_tokens=4)))

        async def messages():
            yield pb.ClientMessage(requests=[request])

        call = stub.Generate(messages(), metadata=security.call_metadata(), timeout=10)
        async for message in call:
            for event in message.events:
                if event.HasField("completion"):
                    return unpack_tokens(event.completion.tokens).tolist()
    raise AssertionError("no completion")


async def health_check(worker: Worker, security: LinkSecurity) -> int:
    async with worker.channel(security) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return reply.status


def expect_rpc_error(coro) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        asyncio.run(coro)
    return exc.value


def test_tls_and_token_serve_info_and_generate_and_health_needs_no_token(pki):
    async def main():
        async with Worker(server_credentials(pki.server_cert, pki.server_key)) as worker:
            good = LinkSecurity.from_files(token_file=pki.token, ca_file=pki.ca)
            reply = await info(worker, good)
            tokens = await generate_one(worker, good)
            status = await health_check(worker, LinkSecurity(ca_cert=good.ca_cert))  # no token
            return reply, tokens, status
    reply, tokens, status = asyncio.run(main())
    assert reply.worker_id == "secure-worker" and reply.vocab_size == 1000
    assert len(tokens) == 4
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),),
                                      (("authorization", "Bearer " + TOKEN + "x"),)],
                         ids=["none", "wrong", "no-scheme", "longer"])
def test_info_without_the_right_token_is_unauthenticated(pki, metadata):
    async def main():
        async with Worker(server_credentials(pki.server_cert, pki.server_key)) as worker:
            await info(worker, LinkSecurity.from_files(ca_file=pki.ca), metadata=metadata)
    error = expect_rpc_error(main())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "missing or wrong token"
    assert TOKEN not in error.details()


def test_generate_stream_without_a_token_is_unauthenticated(pki):
    async def main():
        async with Worker(server_credentials(pki.server_cert, pki.server_key)) as worker:
            await generate_one(worker, LinkSecurity.from_files(ca_file=pki.ca))
    assert expect_rpc_error(main()).code() == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_client_cannot_talk_to_a_tls_worker(pki):
    async def main():
        async with Worker(server_credentials(pki.server_cert, pki.server_key)) as worker:
            await info(worker, LinkSecurity(token=TOKEN))
    assert expect_rpc_error(main()).code() == grpc.StatusCode.UNAVAILABLE


def test_client_that_does_not_trust_the_workers_ca_fails(pki, tmp_path):
    other_ca = _cert("other-ca", _key(), ca=True).public_bytes(serialization.Encoding.PEM)

    async def main():
        async with Worker(server_credentials(pki.server_cert, pki.server_key)) as worker:
            await info(worker, LinkSecurity(token=TOKEN, ca_cert=other_ca))
    assert expect_rpc_error(main()).code() == grpc.StatusCode.UNAVAILABLE


def test_client_ca_requires_a_client_certificate(pki):
    async def main(security):
        credentials = server_credentials(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
        async with Worker(credentials) as worker:
            return await info(worker, security)
    without = LinkSecurity.from_files(token_file=pki.token, ca_file=pki.ca)
    assert expect_rpc_error(main(without)).code() == grpc.StatusCode.UNAVAILABLE
    with_cert = LinkSecurity.from_files(token_file=pki.token, ca_file=pki.ca, cert_file=pki.client_cert,
                                        key_file=pki.client_key)
    assert asyncio.run(main(with_cert)).worker_id == "secure-worker"


def test_mutual_tls_without_a_token_and_a_server_name_override(pki):
    async def main():
        credentials = server_credentials(pki.named_cert, pki.named_key, client_ca_file=pki.ca)
        async with Worker(credentials, token=None) as worker:
            security = LinkSecurity.from_files(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key,
                                               server_name="worker.test")
            reply = await info(worker, security)
            plain_name = LinkSecurity.from_files(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
            with pytest.raises(grpc.aio.AioRpcError) as exc:  # the certificate does not name 127.0.0.1
                await info(worker, plain_name)
            return reply, exc.value.code()
    reply, code = asyncio.run(main())
    assert reply.worker_id == "secure-worker" and code == grpc.StatusCode.UNAVAILABLE


def test_token_over_plaintext_on_loopback(pki):
    async def main():
        async with Worker() as worker:
            reply = await info(worker, LinkSecurity.from_files(token_file=pki.token))
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await info(worker, LinkSecurity())
            return reply, exc.value.code()
    reply, code = asyncio.run(main())
    assert reply.worker_id == "secure-worker" and code == grpc.StatusCode.UNAUTHENTICATED


# --- LinkSecurity and the helpers ---------------------------------------------------------------

def test_link_security_pieces(pki):
    plain = LinkSecurity()
    assert plain.channel_credentials() is None and plain.call_metadata() == () and plain.channel_options() == []
    assert not plain.tls

    full = LinkSecurity.from_files(token_file=pki.token, ca_file=pki.ca, cert_file=pki.client_cert,
                                   key_file=pki.client_key, server_name="worker.test")
    assert full.token == TOKEN  # whitespace stripped
    assert full.call_metadata() == (("authorization", f"Bearer {TOKEN}"),)
    assert isinstance(full.channel_credentials(), grpc.ChannelCredentials)
    assert full.channel_options() == [("grpc.ssl_target_name_override", "worker.test")]
    assert TOKEN not in repr(full) and "PRIVATE" not in repr(full)
    described = full.describe()
    assert described["tls"] and described["token"] and described["client_cert"]
    assert TOKEN not in str(described)


def test_fingerprint_covers_certificates_never_the_token(pki):
    a = LinkSecurity.from_files(token_file=pki.token, ca_file=pki.ca)
    b = LinkSecurity(token="another-token", ca_cert=a.ca_cert)
    c = LinkSecurity(token=TOKEN, ca_cert=open(pki.server_cert, "rb").read())
    assert a.fingerprint() == b.fingerprint()  # the token is not part of it
    assert a.fingerprint() != c.fingerprint() != LinkSecurity().fingerprint()
    assert len(a.fingerprint()) == 64 and TOKEN not in a.fingerprint()


def test_from_files_errors_name_the_file(pki, tmp_path):
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(SecurityError, match=r"--auth-token-file .*empty: the file is empty"):
        LinkSecurity.from_files(token_file=str(empty))
    with pytest.raises(SecurityError, match=r"--auth-token-file .*missing: cannot read"):
        LinkSecurity.from_files(token_file=str(tmp_path / "missing"))
    with pytest.raises(SecurityError, match=r"--tls-ca .*token: not a PEM file"):
        LinkSecurity.from_files(ca_file=pki.token)
    with pytest.raises(SecurityError, match="--tls-client-cert and --tls-client-key go together"):
        LinkSecurity.from_files(ca_file=pki.ca, cert_file=pki.client_cert)
    with pytest.raises(SecurityError, match="needs --tls-ca"):
        LinkSecurity.from_files(cert_file=pki.client_cert, key_file=pki.client_key)
    with pytest.raises(SecurityError, match="--tls-client-key .*ca.pem"):
        LinkSecurity.from_files(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.ca)
    spaced = tmp_path / "spaced"
    spaced.write_text("two words\n")
    with pytest.raises(SecurityError, match="one line of printable ASCII"):
        read_token(str(spaced))
    for error in (SecurityError, ValueError):
        assert issubclass(SecurityError, error)


def test_server_credentials_errors_name_the_flag(pki, tmp_path):
    with pytest.raises(SecurityError, match=r"--tls-key .*server.pem: not a PEM file"):
        server_credentials(pki.server_cert, pki.server_cert)
    with pytest.raises(SecurityError, match=r"--tls-cert .*nope: cannot read"):
        server_credentials(str(tmp_path / "nope"), pki.server_key)


def test_auth_interceptor_compares_the_whole_header():
    interceptor = AuthInterceptor(TOKEN)
    assert interceptor.allows([("authorization", f"Bearer {TOKEN}")])
    assert interceptor.allows([("x-other", "1"), ("authorization", f"Bearer {TOKEN}".encode())])
    assert not interceptor.allows([])
    assert not interceptor.allows([("authorization", f"bearer {TOKEN}")])
    assert not interceptor.allows([("authorization", f"Bearer {TOKEN[:-1]}")])
    assert TOKEN not in repr(interceptor)
    with pytest.raises(SecurityError):
        AuthInterceptor("")


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
                                           ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False),
                                           ("::", False), ("10.0.0.5", False), ("gpu1", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_check_exposure():
    assert check_exposure("127.0.0.1", authenticated=False, insecure=False) is None
    assert check_exposure("0.0.0.0", authenticated=True, insecure=False) is None
    with pytest.raises(SecurityError, match="--auth-token-file.*--insecure"):
        check_exposure("0.0.0.0", authenticated=False, insecure=False)
    warning = check_exposure("0.0.0.0", authenticated=False, insecure=True)
    assert warning.startswith("WARNING: --insecure") and "\n" not in warning


def test_the_security_benchmark_runs(tmp_path):
    from sut.worker.bench_security import make_certificates, measure
    files = make_certificates(tmp_path)
    for mode in ("plaintext", "tls+token"):
        assert asyncio.run(measure(mode, files, requests=200, per_message=16, window=64)) > 0
