"""Checks on outbound webhook URLs: scheme, host, and the addresses the host resolves to.

Private, loopback, link-local (cloud metadata), multicast, reserved and
unspecified addresses are rejected unless a network in
`allowed_target_networks` contains them. The check runs when a
subscription is added and again before every attempt, because DNS answers
can change between the two.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from continuum.services.bridge.errors import SettingsError, TargetError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: list[str]) -> list[IPNetwork]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise SettingsError(
                f"invalid [bridge] allowed_target_networks entry {value!r}: expected a CIDR such as 127.0.0.0/8",
                key="bridge.allowed_target_networks",
            ) from exc
    return networks


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class TargetPolicy:
    """Validates outbound URLs against the allowed networks."""

    def __init__(self, allowed_networks: list[IPNetwork]) -> None:
        self.allowed_networks = allowed_networks

    def check_url(self, url: str) -> tuple[str, int]:
        """Return (host, port) of a well-formed http(s) URL, or raise TargetError."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetError(f"invalid webhook URL {url!r}: {exc}", url=url) from exc
        if parts.scheme not in ("http", "https"):
            raise TargetError(f"invalid webhook URL {url!r}: expected an http:// or https:// URL", url=url)
        if not parts.hostname:
            raise TargetError(f"invalid webhook URL {url!r}: no host", url=url)
        if parts.username or parts.password:
            raise TargetError(f"invalid webhook URL {url!r}: credentials in the URL are not allowed; use headers", url=url)
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    def check_address(self, address: IPAddress, url: str) -> None:
        if _is_public(address) or any(address in network for network in self.allowed_networks):
            return
        raise TargetError(
            f"webhook URL {url!r} resolves to {address}, a private, loopback or link-local address; "
            f"add its network to [bridge] allowed_target_networks (or CONTINUUM_BRIDGE_ALLOWED_TARGET_NETWORKS, "
            f"for example 127.0.0.0/8) and restart the bridge to allow it",
            url=url,
        )

    async def check(self, url: str) -> None:
        """Check the URL and every address its host resolves to; raise TargetError on the first rejected one."""
        host, port = self.check_url(url)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(literal, url)
            return

        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TargetError(f"cannot resolve the host of webhook URL {url!r}: {exc.strerror}", url=url) from exc
        for info in infos:
            self.check_address(ipaddress.ip_address(info[4][0].split("%")[0]), url)
