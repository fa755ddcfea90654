"""Egress rules: which destinations a sandbox may reach, written as the operator and requests write them.

    rule = parse_rule("*.example.com:443")
    rule.matches("api.example.com", 443)          # True
    parse_rule("example.com").covers(rule)       # False: the apex covers no subdomain
    allowed = RuleList.parse(["example.com", "*.s3.amazonaws.com:443"])

A rule is a name, ``*.`` and a name (every subdomain, at any depth, not the
name itself), ``*`` (every name, never an IP address), or an IP address; each
may end in ``:port`` (``[v6]:port`` for IPv6), else any port matches. Names
are compared lower-case, without a trailing dot, IDNA-encoded. An IP address
matches only when a rule names that address: a wildcard never does.

Pure functions of strings: no lookups, no settings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Destination",
    "IPAddress",
    "Rule",
    "RuleList",
    "check_destination",
    "check_network",
    "check_rule",
    "parse_destination",
    "parse_host",
    "parse_rule",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
MAX_NAME = 253
Kind = Literal["name", "suffix", "any", "ip"]


def parse_host(text: str) -> str | IPAddress:
    """A destination host: an IP address, or a normalised name (lower case, IDNA, no final dot).

    Raises:
        ValueError: not a valid name or address.
    """
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"{text!r} is not a valid host name") from exc
    labels = name.split(".")
    if not name or len(name) > MAX_NAME or not all(LABEL.match(label) for label in labels):
        raise ValueError(f"{text!r} is not a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"{text!r} is neither a host name nor an IP address")
    return name


def _split_port(text: str, *, port_required: bool = False) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address (with a
    last ``:port`` when one is required: urllib sends ``CONNECT ::1:443``)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: no closing ']'")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        return text[: end + 1], _port(rest[1:], text) if rest else None
    if text.count(":") > 1:  # a bare IPv6 address
        if port_required:
            host, _, port = text.rpartition(":")
            return host, _port(port, text)
        return text, None
    host, sep, port = text.partition(":")
    return host, _port(port, text) if sep else None


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{whole!r}: the port must be a number from 1 to 65535")
    return int(text)


@dataclass(frozen=True)
class Destination:
    """Where a connection goes: a name or an address, and a port."""

    host: str | IPAddress
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if isinstance(self.host, ipaddress.IPv6Address) else self.host
        return f"{host}:{self.port}"


def parse_destination(text: str, default_port: int | None = None) -> Destination:
    """``host:port`` (the port may be left out when ``default_port`` is given).

    Raises:
        ValueError: a bad host or port, or no port where one is needed.
    """
    host, port = _split_port(text.strip(), port_required=default_port is None)
    port = port if port is not None else default_port
    if port is None:
        raise ValueError(f"{text!r}: a port is needed (host:port)")
    return Destination(parse_host(host), port)


@dataclass(frozen=True)
class Rule:
    """One allow- or deny-list entry (see the module docstring)."""

    kind: Kind
    host: str | IPAddress | None  # the name, the suffix's name, the address; None for ``*``
    port: int | None

    def __str__(self) -> str:
        host = {"any": "*", "suffix": f"*.{self.host}"}.get(self.kind, str(self.host))
        if isinstance(self.host, ipaddress.IPv6Address):
            host = f"[{self.host}]"
        return host if self.port is None else f"{host}:{self.port}"

    @classmethod
    def exactly(cls, destination: Destination) -> Rule:
        """The rule that matches ``destination`` and nothing else."""
        if isinstance(destination.host, str):
            return cls("name", destination.host, destination.port)
        return cls("ip", destination.host, destination.port)

    def matches(self, host: str | IPAddress, port: int) -> bool:
        """Whether a connection to ``host`` (normalised, see `parse_host`) and ``port`` is one."""
        if self.port is not None and port != self.port:
            return False
        if not isinstance(host, str):
            return self.kind == "ip" and self.host == host
        if self.kind == "any":
            return True
        if self.kind == "name":
            return host == self.host
        return self.kind == "suffix" and host.endswith(f".{self.host}")

    def covers(self, other: Rule) -> bool:
        """Whether every connection ``other`` matches, this rule matches too."""
        if self.port is not None and other.port != self.port:
            return False
        if other.kind == "ip" or self.kind == "ip":
            return self.kind == other.kind and self.host == other.host
        if self.kind == "any":
            return True
        if other.kind == "any":
            return False
        assert isinstance(other.host, str)
        if self.kind == "name":
            return other.kind == "name" and other.host == self.host
        return other.host.endswith(f".{self.host}") or (
            other.kind == "suffix" and other.host == self.host
        )


def parse_rule(text: str) -> Rule:
    """One rule (see the module docstring).

    Raises:
        ValueError: not a rule; the message quotes it.
    """
    body, port = _split_port(text.strip())
    if body == "*":
        return Rule("any", None, port)
    if body.startswith("*."):
        name = parse_host(body[2:])
        if not isinstance(name, str):
            raise ValueError(f"{text!r}: a wildcard takes a name, not an address")
        return Rule("suffix", name, port)
    if "*" in body:
        raise ValueError(f"{text!r}: '*' stands alone or as the first label ('*.example.com')")
    host = parse_host(body)
    return Rule("name", host, port) if isinstance(host, str) else Rule("ip", host, port)


@dataclass(frozen=True)
class RuleList:
    """Rules in order; a connection is on the list when any rule matches it."""

    rules: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> RuleList:
        """Raises: ValueError: a text that is not a rule."""
        return cls(tuple(parse_rule(t) for t in texts))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __str__(self) -> str:
        return ", ".join(str(r) for r in self.rules)

    def matches(self, host: str | IPAddress, port: int) -> bool:
        return any(rule.matches(host, port) for rule in self.rules)

    def covers(self, rule: Rule) -> bool:
        return any(mine.covers(rule) for mine in self.rules)

    def uncovered(self, rules: Sequence[Rule]) -> list[Rule]:
        """The rules of ``rules`` this list does not cover (empty: a subset)."""
        return [rule for rule in rules if not self.covers(rule)]


def check_rule(text: str) -> str:
    """``text`` stripped, when it is a rule (a pydantic validator).

    Raises:
        ValueError: it is not.
    """
    parse_rule(text)
    return text.strip()


def check_network(text: str) -> str:
    """``text`` stripped, when it is a CIDR range such as ``203.0.113.0/24`` (a validator).

    Raises:
        ValueError: it is not.
    """
    ipaddress.ip_network(text.strip(), strict=False)
    return text.strip()


def check_destination(text: str) -> str:
    """``text`` stripped, when it is ``host:port`` with a name or an address (a validator).

    Raises:
        ValueError: it is not.
    """
    parse_destination(text)
    return text.strip()
