"""Name lookups for the egress proxy: the system's, or a hosts table (tests, pinned names).

    resolver = SystemResolver()
    addresses = await resolver.resolve("example.com")   # [IPv4Address(...), ...]
    resolver = HostsResolver.parse("203.0.113.10 files.test\\n10.0.0.5 inside.test")

The proxy looks a name up once per connection and connects to exactly the
addresses it checked (see `proxy`), so a resolver that answers differently
from one lookup to the next (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Protocol

from ai_data_agent.egress.rules import IPAddress

__all__ = ["HostsResolver", "Resolver", "SystemResolver"]


class Resolver(Protocol):
    async def resolve(self, name: str) -> list[IPAddress]:
        """The addresses of ``name`` (a normalised host name); empty when it has none."""


class SystemResolver:
    """``getaddrinfo``: the host's resolver configuration (``/etc/hosts``, DNS)."""

    async def resolve(self, name: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return []
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if address not in found:
                found.append(address)
        return found


class HostsResolver:
    """Names from a table: each name has a list of answers, and a lookup takes the next one
    (the last repeats), so a test can make a name answer differently from lookup to lookup."""

    def __init__(self, table: Mapping[str, Sequence[Sequence[IPAddress]]]) -> None:
        self._table = {name: [list(a) for a in answers] for name, answers in table.items()}
        self.lookups: list[str] = []

    @classmethod
    def parse(cls, text: str) -> HostsResolver:
        """``/etc/hosts`` lines (``address name...``); a name on several lines answers with
        each line's address in turn."""
        table: dict[str, list[list[IPAddress]]] = {}
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            address = ipaddress.ip_address(fields[0])
            for name in fields[1:]:
                table.setdefault(name.lower().rstrip("."), []).append([address])
        return cls(table)

    async def resolve(self, name: str) -> list[IPAddress]:
        self.lookups.append(name)
        answers = self._table.get(name)
        if not answers:
            return []
        return list(answers.pop(0) if len(answers) > 1 else answers[0])
