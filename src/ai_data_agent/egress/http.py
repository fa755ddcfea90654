"""The proxy's side of HTTP/1.1: a request head in, the head to forward (or a refusal) out.

    request = parse_request(b"CONNECT files.test:443 HTTP/1.1\\r\\nHost: files.test\\r\\n\\r\\n")
    request.method, request.destination        # "CONNECT", files.test:443
    refusal_bytes(403, "egress denied: 10.0.0.5 is a private address")

Two forms reach the proxy: ``CONNECT host:port`` (a tunnel, for HTTPS and
anything else) and a request in absolute form (``GET http://host/path``),
forwarded in origin form with ``Host`` set to the URL's authority (RFC 9112
3.2.2: a proxy replaces the Host header), the proxy's own and hop-by-hop
headers dropped, and ``Connection: close``: one request per connection, so a
second request can never ride on a connection checked for another host.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ai_data_agent.egress.rules import Destination, parse_destination

__all__ = ["ProxyRequest", "parse_request", "refusal_bytes"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "host",
    }
)
REASONS = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class ProxyRequest:
    method: str
    destination: Destination
    forward: bytes | None  # the head to send upstream; None for CONNECT


def parse_request(head: bytes) -> ProxyRequest:
    """A request head (through the blank line) as the sandbox sent it.

    Raises:
        ValueError: not HTTP/1.x, not CONNECT or an ``http://`` URL, or a bad host; the
            message says which.
    """
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    method, target, version = parts
    headers = _headers(lines[1:])
    if method == "CONNECT":
        return ProxyRequest(method, parse_destination(target), None)
    url = urlsplit(target)
    if url.scheme != "http" or not url.netloc or "@" in url.netloc:
        raise ValueError(
            f"{method} {target[:80]}: only http:// URLs are forwarded (https goes by CONNECT)"
        )
    destination = parse_destination(url.netloc, default_port=80)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    kept = _forwarded_headers(headers)
    lines_out = [f"{method} {path} {version}", f"Host: {url.netloc}", *kept, "Connection: close"]
    return ProxyRequest(
        method, destination, ("\r\n".join(lines_out) + "\r\n\r\n").encode("latin-1")
    )


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    found = []
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError(f"not a header line: {line[:80]!r}")
        found.append((name, value.strip()))
    return found


def _forwarded_headers(headers: list[tuple[str, str]]) -> list[str]:
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() in ("connection", "proxy-connection")
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | listed
    return [f"{name}: {value}" for name, value in headers if name.lower() not in drop]


def refusal_bytes(status: int, reason: str) -> bytes:
    """A complete answer whose reason phrase is ``reason``: urllib and requests show the
    phrase of a failed CONNECT (``Tunnel connection failed: 403 egress denied: ...``)."""
    phrase = reason.replace("\r", " ").replace("\n", " ").encode("ascii", "replace")
    body = phrase + b"\n"
    return (
        f"HTTP/1.1 {status} ".encode()
        + phrase
        + b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
