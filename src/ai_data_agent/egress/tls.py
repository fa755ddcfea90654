"""The server name (SNI) a TLS ClientHello asks for, read from the first bytes of a tunnel.

    sni = client_hello_sni(first_bytes)   # "files.test"; NO_SNI; or None: need more bytes

Only what the check needs is parsed: the record layer (a ClientHello may span
several handshake records), the handshake header, and the ``server_name``
extension (RFC 6066 3). Anything that is not a ClientHello raises ValueError.
"""

from __future__ import annotations

__all__ = ["MAX_HELLO_BYTES", "NO_SNI", "client_hello_sni"]

MAX_HELLO_BYTES = 64 * 1024
NO_SNI = ""
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_SERVER_NAME = 0
_HOST_NAME = 0


def _handshake_bytes(data: bytes) -> bytes:
    """The handshake layer's bytes in the complete records at the start of ``data``."""
    out = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        if data[pos] != _HANDSHAKE or data[pos + 1] != 3:
            raise ValueError("not a TLS handshake record")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if pos + 5 + length > len(data):
            break
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
    return bytes(out)


def client_hello_sni(data: bytes) -> str | None:
    """The ClientHello's host name (lower case), `NO_SNI` when it names none, or None
    when ``data`` does not hold the whole ClientHello yet.

    Raises:
        ValueError: ``data`` starts with something else, or the message is malformed.
    """
    if data and data[0] != _HANDSHAKE:
        raise ValueError("not a TLS handshake record")
    hs = _handshake_bytes(data)
    if len(hs) < 4:
        return None
    if hs[0] != _CLIENT_HELLO:
        raise ValueError("the first handshake message is not a ClientHello")
    length = int.from_bytes(hs[1:4], "big")
    if len(hs) < 4 + length:
        return None
    try:
        return _sni(hs[4 : 4 + length])
    except IndexError as exc:
        raise ValueError("a truncated ClientHello") from exc


def _take(body: bytes, pos: int, size_bytes: int) -> tuple[bytes, int]:
    size = int.from_bytes(body[pos : pos + size_bytes], "big")
    start = pos + size_bytes
    if start + size > len(body) or pos + size_bytes > len(body):
        raise IndexError("past the end")
    return body[start : start + size], start + size


def _sni(body: bytes) -> str:
    pos = 2 + 32  # client version, random
    _, pos = _take(body, pos, 1)  # session id
    _, pos = _take(body, pos, 2)  # cipher suites
    _, pos = _take(body, pos, 1)  # compression methods
    if pos == len(body):
        return NO_SNI  # no extensions at all
    extensions, _ = _take(body, pos, 2)
    pos = 0
    while pos < len(extensions):
        kind = int.from_bytes(extensions[pos : pos + 2], "big")
        value, pos = _take(extensions, pos + 2, 2)
        if kind != _SERVER_NAME:
            continue
        names, _ = _take(value, 0, 2)
        at = 0
        while at < len(names):
            name_type = names[at]
            name, at = _take(names, at + 1, 2)
            if name_type == _HOST_NAME:
                return name.decode("ascii", "replace").lower().rstrip(".")
    return NO_SNI
