"""Which addresses a sandbox's connections may go to: global ones, and the ranges the operator lists.

    refusal(ip_address("10.0.0.5"))                    # "a private address"
    refusal(ip_address("::ffff:169.254.169.254"))      # "a link-local address (cloud metadata)"
    refusal(ip_address("203.0.113.7"), [ip_network("203.0.113.0/24")])   # None: listed
    refusal(ip_address("93.184.216.34"))               # None: global

IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96``,
IPv4-translated ``::ffff:0:0:0/96``, IPv4-compatible ``::/96``, NAT64
``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo
``2001::/32``) are judged by the IPv4 address they carry, as that is where the
packets end up. Everything not globally routable is refused unless listed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ai_data_agent.egress.rules import IPAddress

__all__ = ["IPNetwork", "embedded_ipv4", "refusal"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_V6 = ipaddress.IPv6Network
_TRANSLATED = _V6("::ffff:0:0:0/96")
_COMPATIBLE = _V6("::/96")
_NAT64 = (_V6("64:ff9b::/96"), _V6("64:ff9b:1::/48"))
_METADATA = (ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_PRIVATE = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (see the module docstring), or None."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address: where the packets go
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _TRANSLATED or any(address in net for net in _NAT64):
        return low32
    if address in _COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return low32
    return None


def refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why a connection to ``address`` is refused (``"a private address"``), or None.

    ``allowed`` are the operator's ranges: an address in one of them (or carrying
    one, see `embedded_ipv4`) is reachable although it is not global.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped address"
        address = embedded_ipv4(address) or address
    if any(address.version == net.version and address in net for net in allowed):
        return None
    return _kind(address)


def _kind(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in _METADATA:
        return "a link-local address (cloud metadata)"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.version == 4 and address in _SHARED:
        return "a shared address (carrier-grade NAT)"
    if any(address.version == net.version and address in net for net in _PRIVATE):
        return "a private address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a private address"
    if not address.is_global:
        return "a reserved address (not globally routable)"
    return None
