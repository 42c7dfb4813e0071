"""The client's address: one notion for throttles, login limits, /metrics and the access log.

The peer's address (``REMOTE_ADDR``), unless the peer is one of ``TRUSTED_PROXIES``: then the
proxies' ``X-Forwarded-For`` is read from the right (each proxy appends the address it heard
from), skipping the trusted proxies, and the first other address is the client. What a client
writes into the header itself stands left of that and is never read. With no trusted proxy
(the default) forwarding headers change nothing.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = ipaddress.ip_address("0.0.0.0")  # noqa: S104 - the unknown client, never an address bound


def _address(raw: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def client_address(request: HttpRequest) -> IPAddress:
    """The client's address (0.0.0.0 when the peer's is unreadable); computed once per request."""
    cached = getattr(request, "_client_address", None)
    if cached is not None:
        return cached
    address = _address(request.META.get("REMOTE_ADDR", "")) or UNKNOWN
    if settings.TRUSTED_PROXIES and _trusted(address):
        for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
            hop_address = _address(hop)
            if hop_address is None:
                break  # a trusted proxy heard from something that is no address: keep the last proxy
            address = hop_address
            if not _trusted(hop_address):
                break
    request._client_address = address  # type: ignore[attr-defined]  # this request's answer, kept on it
    return address


def client_ip(request: HttpRequest) -> str:
    """The client's address as text (django-axes' AXES_CLIENT_IP_CALLABLE)."""
    return str(client_address(request))


def client_key(request: HttpRequest) -> str:
    """The client as one throttle key: its address, or its /64 for IPv6, where one subscriber
    holds a whole /64 (a key per address would let it count anew with every address)."""
    address = client_address(request)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
