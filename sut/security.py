"""Who may talk to a worker: a shared bearer token, TLS, and the rule that a worker reachable from
other hosts never serves without authentication unless told to (--insecure).

Worker side: `read_token`, `server_credentials`, `AuthInterceptor`, `check_exposure`.
Coordinator side: `LinkSecurity` (one per run; every link uses it): `channel_credentials()`,
`channel_options()` and `call_metadata()` for each call, `fingerprint()` for the manifest.
The token is never logged, printed, put in an error message or a fingerprint.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field

import grpc

TOKEN_HEADER = "authorization"
TOKEN_SCHEME = "Bearer "
# The standard health service stays open so load balancers and launchers can probe a worker.
UNAUTHENTICATED_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
DENIED = "missing or wrong token"


class SecurityError(ValueError):
    """A token, certificate or key that cannot be used; the message is one line naming the file."""


def read_token(path: str, flag: str = "--auth-token-file") -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise SecurityError(f"{flag} {path}: cannot read the token: {exc.strerror or exc}") from None
    try:
        token = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecurityError(f"{flag} {path}: the token is not UTF-8 text") from None
    if not token:
        raise SecurityError(f"{flag} {path}: the file is empty; it must hold the shared token")
    if not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise SecurityError(f"{flag} {path}: the token must be one line of printable ASCII without spaces")
    return token


def read_pem(path: str, flag: str, marker: bytes = b"-----BEGIN ") -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise SecurityError(f"{flag} {path}: cannot read: {exc.strerror or exc}") from None
    if marker not in data:
        raise SecurityError(f"{flag} {path}: not a PEM file (no '{marker.decode()}' line)")
    return data


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other host can reach."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, authenticated: bool, insecure: bool) -> str | None:
    """The worker's rule for listening addresses. Raises SecurityError for a non-loopback address
    without authentication unless `insecure`; returns a warning line to print, or None."""
    if is_loopback(host) or authenticated:
        return None
    if not insecure:
        raise SecurityError(f"--host {host}: a worker reachable from other hosts needs --auth-token-file "
                            f"(and --tls-cert/--tls-key) or --tls-client-ca; pass --insecure to serve without "
                            f"authentication on a trusted network")
    return (f"WARNING: --insecure: serving on {host} without authentication; anyone who can reach this port "
            f"can use the engine")


def server_credentials(cert_file: str, key_file: str, client_ca_file: str | None = None) -> grpc.ServerCredentials:
    """TLS for a worker: its certificate chain and key (PEM); with a client CA, clients must present
    a certificate signed by it."""
    cert = read_pem(cert_file, "--tls-cert")
    key = read_pem(key_file, "--tls-key", b"PRIVATE KEY-----")
    client_ca = read_pem(client_ca_file, "--tls-client-ca") if client_ca_file else None
    try:
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                           require_client_auth=client_ca is not None)
    except Exception as exc:  # grpc checks little here; a bad pair fails at the first handshake
        raise SecurityError(f"--tls-cert {cert_file} / --tls-key {key_file}: {exc}") from None


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that aborts with UNAUTHENTICATED."""
    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED)

    async def streaming(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, DENIED)
        yield  # pragma: no cover  (makes this an async generator)

    kwargs = dict(request_deserializer=handler.request_deserializer,
                  response_serializer=handler.response_serializer)
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(streaming, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, **kwargs)
    return grpc.unary_unary_rpc_method_handler(unary, **kwargs)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Every method but the health service's Check/Watch needs `authorization: Bearer <token>`."""

    def __init__(self, token: str):
        if not token:
            raise SecurityError("the auth token is empty")
        self._expected = (TOKEN_SCHEME + token).encode("utf-8")

    def __repr__(self) -> str:  # never show the token
        return "AuthInterceptor(token=<hidden>)"

    def allows(self, metadata) -> bool:
        presented = b""
        for key, value in metadata or ():
            if key == TOKEN_HEADER:
                presented = value.encode("utf-8") if isinstance(value, str) else bytes(value)
                break
        return hmac.compare_digest(presented, self._expected)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in UNAUTHENTICATED_METHODS:
            return handler
        if self.allows(handler_call_details.invocation_metadata):
            return handler
        return _deny(handler)


@dataclass(frozen=True)
class LinkSecurity:
    """How the coordinator reaches its workers. All None: plaintext without a token."""

    token: str | None = field(default=None, repr=False)
    ca_cert: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = field(default=None, repr=False)
    server_name_override: str | None = None

    def __post_init__(self):
        if (self.client_cert is None) != (self.client_key is None):
            raise SecurityError("a client certificate needs its key and a key its certificate")
        if self.client_cert is not None and self.ca_cert is None:
            raise SecurityError("a client certificate is only sent over TLS: give the workers' CA too")
        if self.server_name_override is not None and self.ca_cert is None:
            raise SecurityError("a TLS server name needs TLS: give the workers' CA too")

    @classmethod
    def from_files(cls, token_file: str | None = None, ca_file: str | None = None, cert_file: str | None = None,
                   key_file: str | None = None, server_name: str | None = None) -> "LinkSecurity":
        """Flag names in the messages are the coordinator's: --auth-token-file, --tls-ca,
        --tls-client-cert, --tls-client-key, --tls-server-name."""
        if (cert_file is None) != (key_file is None):
            raise SecurityError("--tls-client-cert and --tls-client-key go together")
        if cert_file is not None and ca_file is None:
            raise SecurityError("--tls-client-cert needs --tls-ca (client certificates are sent only over TLS)")
        if server_name is not None and ca_file is None:
            raise SecurityError("--tls-server-name needs --tls-ca")
        return cls(token=read_token(token_file) if token_file else None,
                   ca_cert=read_pem(ca_file, "--tls-ca") if ca_file else None,
                   client_cert=read_pem(cert_file, "--tls-client-cert") if cert_file else None,
                   client_key=read_pem(key_file, "--tls-client-key", b"PRIVATE KEY-----") if key_file else None,
                   server_name_override=server_name or None)

    @property
    def tls(self) -> bool:
        return self.ca_cert is not None

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """For grpc.aio.secure_channel; None: use grpc.aio.insecure_channel."""
        if not self.tls:
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.ca_cert, private_key=self.client_key,
                                            certificate_chain=self.client_cert)

    def channel_options(self) -> list[tuple[str, str]]:
        """Add to the channel's options (wire.CHANNEL_OPTIONS)."""
        if self.server_name_override:
            return [("grpc.ssl_target_name_override", self.server_name_override)]
        return []

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """Pass as metadata= on every Backend call (Generate, Info); health checks need none."""
        if self.token is None:
            return ()
        return ((TOKEN_HEADER, TOKEN_SCHEME + self.token),)

    def fingerprint(self) -> str:
        """sha256 (hex) over the CA, the client certificate and the server name override: public
        material only, never the token or a key. For the run's manifest."""
        digest = hashlib.sha256()
        for label, material in (("ca", self.ca_cert), ("client_cert", self.client_cert),
                                ("server_name", (self.server_name_override or "").encode())):
            digest.update(label.encode() + b"\0" + (material or b"") + b"\0")
        return digest.hexdigest()

    def describe(self) -> dict:
        """For the manifest: what protects the link, without secrets."""
        return {"tls": self.tls, "client_cert": self.client_cert is not None, "token": self.token is not None,
                "server_name_override": self.server_name_override, "fingerprint": self.fingerprint()}
