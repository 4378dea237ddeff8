"""Who is on the other end of a request, for the sign-in limits.

The socket peer (the ASGI scope's `client`), unless that peer is one of the proxies
named in `TRUSTED_PROXIES` (addresses or networks, comma-separated). Then
`X-Forwarded-For` is read right to left, skipping trusted hops: the first address
that is not a trusted proxy is the one the nearest trusted proxy saw. Entries further
left were written by the client and are never believed. Done here from the scope,
not by a server flag, so granian and uvicorn give the same answer.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def parse_trusted(text: str) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES` as networks; a bad entry is a configuration error."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"TRUSTED_PROXIES: {item!r} is not an IP address or network") from None
    return tuple(networks)


def _is_trusted(address: str, trusted: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def client_address(scope: dict, trusted: tuple[Network, ...]) -> str:
    """The client's address for this ASGI scope (see the module docstring)."""
    peer = scope["client"][0] if scope.get("client") else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(
        value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"
    )
    nearest = peer
    for hop in reversed([part.strip() for part in forwarded.split(",") if part.strip()]):
        if not _valid(hop):
            return nearest  # a trusted proxy never writes this: stop at the last hop it vouched for
        if not _is_trusted(hop, trusted):
            return hop
        nearest = hop
    return nearest
