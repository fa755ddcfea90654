"""One sandbox's egress policy and budget: what it may reach, and how much it has used.

    policy = Policy.build(allow=["files.test:443"], deny=[], networks=["203.0.113.0/24"])
    policy.refuse_destination(parse_destination("files.test:443"))   # None: on the list
    usable, reason = policy.usable_addresses("files.test", [ip_address("203.0.113.10")])
    budget = Budget(caps); budget.take("out", 1024)                    # False past the cap

The proxy asks `Policy` before it looks a name up (a name not on the list is
never looked up, so lookups cannot carry data out) and again for every
address the lookup gave; `Budget` holds the caps of one sandbox across all
its connections.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ai_data_agent.egress.addresses import IPNetwork, refusal
from ai_data_agent.egress.rules import Destination, IPAddress, RuleList, parse_destination

__all__ = ["Budget", "Caps", "Direction", "Policy"]

Direction = Literal["out", "in"]


@dataclass(frozen=True)
class Caps:
    """Limits of one sandbox's egress (all its connections together)."""

    max_connections: int = 16
    max_bytes_out: int = 64 * 1024 * 1024
    max_bytes_in: int = 1024 * 1024 * 1024
    idle_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class Policy:
    """The sandbox's allow-list, the operator's deny-list and ranges, and published ports."""

    allow: RuleList
    deny: RuleList = field(default_factory=RuleList)
    networks: tuple[IPNetwork, ...] = ()
    publish: Mapping[str, Destination] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        allow: Iterable[str],
        deny: Iterable[str] = (),
        networks: Iterable[str] = (),
        publish: Mapping[str, str] | None = None,
    ) -> Policy:
        """Raises: ValueError: a rule, range or published destination that does not parse."""
        return cls(
            allow=RuleList.parse(allow),
            deny=RuleList.parse(deny),
            networks=tuple(ipaddress.ip_network(n, strict=False) for n in networks),
            publish={name: parse_destination(d) for name, d in (publish or {}).items()},
        )

    def refuse_destination(
        self, destination: Destination, *, published: bool = False
    ) -> str | None:
        """Why ``destination`` is refused before any lookup, or None. A published
        destination was checked when the run was admitted; the deny-list and the
        address checks still apply."""
        host, port = destination.host, destination.port
        if self.deny.matches(host, port):
            return f"{destination} is on the deny-list"
        if not isinstance(host, str):
            kind = refusal(host, self.networks)
            if kind is not None:
                return f"{host} is {kind}"
        if not published and not self.allow.matches(host, port):
            return f"{destination} is not on the allow-list"
        return None

    def usable_addresses(
        self, name: str, addresses: Sequence[IPAddress]
    ) -> tuple[list[IPAddress], str | None]:
        """The addresses of ``name`` a connection may go to, and why when there are none."""
        if not addresses:
            return [], f"{name} does not resolve"
        usable = [a for a in addresses if refusal(a, self.networks) is None]
        if usable:
            return usable, None
        first = addresses[0]
        return [], f"{first} is {refusal(first, self.networks)} (an address of {name})"


class Budget:
    """A sandbox's caps across its connections. Used on the proxy's event-loop thread only."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self.connections = 0
        self.sent = {"out": 0, "in": 0}
        self.exhausted: str | None = None

    def admit(self) -> str | None:
        """Count a new connection; why it is refused (and then not counted), or None."""
        if self.exhausted is not None:
            return self.exhausted
        if self.connections >= self.caps.max_connections:
            return f"the sandbox has {self.connections} connections open, the most allowed"
        self.connections += 1
        return None

    def release(self) -> None:
        self.connections -= 1

    def take(self, direction: Direction, size: int) -> bool:
        """Count ``size`` bytes; False when that crosses the cap (the connection must end)."""
        cap = self.caps.max_bytes_out if direction == "out" else self.caps.max_bytes_in
        self.sent[direction] += size
        if self.sent[direction] > cap:
            self.exhausted = f"the sandbox's egress byte cap ({cap} bytes {direction}) is reached"
            return False
        return True
