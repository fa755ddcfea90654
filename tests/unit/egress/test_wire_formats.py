"""What the proxy reads: request heads, and the server name of a real TLS ClientHello."""

from __future__ import annotations

import ssl

import pytest

from ai_data_agent.egress.http import parse_request, refusal_bytes
from ai_data_agent.egress.rules import Destination
from ai_data_agent.egress.tls import NO_SNI, client_hello_sni


def client_hello(server_name: str | None) -> bytes:
    """The ClientHello Python's ssl module sends (TLS 1.3 with key shares: over 500 bytes)."""
    context = ssl.create_default_context()
    if server_name is None:
        context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_connect() -> None:
    request = parse_request(b"CONNECT files.test:443 HTTP/1.1\r\nHost: files.test:443\r\n\r\n")
    assert request.method == "CONNECT"
    assert request.destination == Destination("files.test", 443)
    assert request.forward is None


def test_an_absolute_url_is_forwarded_in_origin_form_with_the_url_host() -> None:
    head = (
        b"POST http://Files.Test:8080/up?x=1 HTTP/1.1\r\nHost: evil.test\r\n"
        b"Proxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\n"
        b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nContent-Length: 3\r\n\r\n"
    )
    request = parse_request(head)
    assert request.destination == Destination("files.test", 8080)
    assert request.forward == (
        b"POST /up?x=1 HTTP/1.1\r\nHost: Files.Test:8080\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "only http:// URLs"),
        (b"GET https://files.test/ HTTP/1.1\r\n\r\n", "only http:// URLs"),
        (b"GET http://user@files.test/ HTTP/1.1\r\n\r\n", "only http:// URLs"),
        (b"CONNECT files.test HTTP/1.1\r\n\r\n", "a port is needed"),
        (b"CONNECT files.test:443 SPDY/3\r\n\r\n", "not an HTTP/1.x request line"),
        (b"CONNECT files.test:443 HTTP/1.1\r\nno colon\r\n\r\n", "not a header line"),
        (b"CONNECT bad_host!:443 HTTP/1.1\r\n\r\n", "not a valid host name"),
    ],
)
def test_bad_heads_are_refused_saying_why(head: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_request(head)


def test_a_refusal_carries_its_reason_as_the_status_phrase_and_the_body() -> None:
    answer = refusal_bytes(403, "egress denied: 10.0.0.5 is a private address")
    head, body = answer.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 egress denied: 10.0.0.5 is a private address\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert body == b"egress denied: 10.0.0.5 is a private address\n"


def test_the_server_name_of_a_client_hello() -> None:
    hello = client_hello("files.test")
    assert client_hello_sni(hello) == "files.test"
    assert client_hello_sni(client_hello(None)) == NO_SNI


def test_a_client_hello_in_pieces_needs_more_bytes_until_whole() -> None:
    hello = client_hello("files.test")
    for cut in (0, 3, 5, 9, len(hello) // 2, len(hello) - 1):
        assert client_hello_sni(hello[:cut]) is None
    # The same message split over two handshake records.
    body = hello[5:]
    first, second = body[:100], body[100:]
    header = hello[:3]
    records = (
        header
        + len(first).to_bytes(2, "big")
        + first
        + header
        + len(second).to_bytes(2, "big")
        + second
    )
    assert client_hello_sni(records) == "files.test"


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"\x16\x02\x00\x00\x05hello", b"\x16\x03\x01\x00\x04\x02\x00\x00\x00"],
)
def test_what_is_not_a_client_hello_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        client_hello_sni(data)


def test_a_truncated_client_hello_is_refused() -> None:
    hello = client_hello("files.test")
    body = hello[9 : 9 + 40]  # a whole message by its length that ends inside the session id
    record = hello[:3] + (4 + 40).to_bytes(2, "big") + b"\x01" + (40).to_bytes(3, "big") + body
    with pytest.raises(ValueError, match="truncated"):
        client_hello_sni(record)
