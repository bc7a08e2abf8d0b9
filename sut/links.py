"""Which link type serves a worker address: the extension point for transports.

An address with no scheme (`HOST:PORT`) is a gRPC worker (`sut.transport.WorkerLink`). An address
with a scheme (`openai+http://HOST:PORT/v1?...`) names its link type here; each type brings its own
address check, so the harness validates `--workers` without knowing the types.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sut.security import LinkSecurity
from sut.transport import WorkerLink


@dataclass(frozen=True)
class LinkType:
    name: str
    factory: Callable          # (address, listener, security=...) -> a Connection
    check_address: Callable[[str], object]  # raises ValueError with one line naming the address


def _openai_link(address, listener, security=None):
    from sut.openai_api.link import OpenAILink  # httpx is needed only when an endpoint is named
    return OpenAILink(address, listener, security=security)


def _check_openai(address: str):
    from sut.openai_api.options import parse_endpoint
    return parse_endpoint(address)


_OPENAI = LinkType("openai-http", _openai_link, _check_openai)
LINK_TYPES: dict[str, LinkType] = {"openai+http": _OPENAI, "openai+https": _OPENAI, "http": _OPENAI, "https": _OPENAI}


def scheme_of(address: str) -> str | None:
    """The address's scheme, lower case, or None for HOST:PORT."""
    scheme, sep, _ = address.partition("://")
    return scheme.lower() if sep else None


def link_type(address: str) -> LinkType | None:
    """None for a gRPC HOST:PORT address; raises ValueError for a scheme no link type serves."""
    scheme = scheme_of(address)
    if scheme is None:
        return None
    if scheme not in LINK_TYPES:
        raise ValueError(f"{address}: no link type serves the scheme {scheme!r} (known: "
                         f"{', '.join(sorted(LINK_TYPES))}, or HOST:PORT for a gRPC worker)")
    return LINK_TYPES[scheme]


def make_link(address: str, listener, security: LinkSecurity | None = None):
    """The dispatcher's link factory: a gRPC WorkerLink for HOST:PORT, else the scheme's type."""
    kind = link_type(address)
    if kind is None:
        return WorkerLink(address, listener, security=security)
    return kind.factory(address, listener, security=security)
