"""The egress proxy end to end on the host: the sandbox's relay, the proxy, real servers.

Servers listen on loopback addresses of their own (127.x.y.z, which the tests'
settings list as reachable), names come from a hosts table, and the relay of
``sandbox.egress_relay`` stands in for the sandbox (its own tests run it in
real containers: tests/integration/egress).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.egress.proxy import PROXY_SOCKET, EgressLease, EgressProxy
from ai_data_agent.egress.resolver import HostsResolver
from ai_data_agent.errors import ConfigurationError
from ai_data_agent.sandbox import egress_relay
from ai_data_agent.settings import Settings
from tests.support.egress_net import Canary, EchoServer, HttpsServer
from tests.support.wait import poll


def loopback() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA) -> Iterator[HttpsServer]:
    with HttpsServer(ca, ["files.test", "other.test"], (loopback(), 443)) as server:
        yield server


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer((loopback(), 0)) as server:
        yield server


@pytest.fixture
def events() -> list[EgressEvent]:
    return []


def make_proxy(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent], **settings: Any
) -> EgressProxy:
    hosts = HostsResolver.parse(
        f"{files_address(files)} files.test other.test\n"
        f"{echo_address(echo)} db.test\n"
        f"10.0.0.5 inside.test\n"
        f"10.0.0.5 mixed.test\n{files_address(files)} mixed.test\n"
    )
    values: dict[str, Any] = {
        "egress_allow": ["*.test", "127.0.0.0"],
        "egress_allow_cidrs": ["127.0.0.0/8"],
        "egress_deny": ["denied.test"],
        **settings,
    }
    proxy = EgressProxy(Settings(**values), resolver=hosts)
    proxy.log.add_sink(events.append)
    return proxy


def files_address(files: HttpsServer) -> str:
    assert files._sock is not None
    return str(files._sock.getsockname()[0])


def echo_address(echo: EchoServer) -> str:
    assert echo._sock is not None
    return f"{echo._sock.getsockname()[0]}"


@pytest.fixture
def proxy(files: HttpsServer, echo: EchoServer, events: list[EgressEvent]) -> Iterator[EgressProxy]:
    proxy = make_proxy(files, echo, events)
    yield proxy
    proxy.close()


def relay(lease: EgressLease) -> dict[str, str]:
    """The sandbox's relay for ``lease`` (on free ports, as several run in this process)."""
    return egress_relay.start(
        {"dir": str(lease.host_dir), "port": 0, "publish": list(lease.publish)}
    )


def opener(env: dict[str, str], ca: trustme.CA) -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": env["HTTP_PROXY"], "https": env["HTTPS_PROXY"]}),
        urllib.request.HTTPSHandler(context=context),
    )


@contextmanager
def published_echo(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent], **settings: Any
) -> Iterator[tuple[EgressLease, tuple[str, int]]]:
    """A proxy with ``settings``, a lease that publishes the echo server as ``PG``, and the
    local address the relay gives it."""
    proxy = make_proxy(files, echo, events, **settings)
    try:
        lease = proxy.open("run-pg", allow=[], publish={"PG": f"db.test:{echo.port}"})
        host, port = relay(lease)["AI_DATA_AGENT_EGRESS_PG"].split(":")
        yield lease, (host, int(port))
        lease.close()
    finally:
        proxy.close()


def raw_connect(lease: EgressLease, head: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(lease.host_dir / PROXY_SOCKET))
    sock.sendall(head)
    return sock


def exchange(lease: EgressLease, head: bytes) -> bytes:
    """Send ``head`` to the lease's proxy socket; everything it answers until it closes."""
    data = b""
    with raw_connect(lease, head) as sock:
        while chunk := sock.recv(65536):
            data += chunk
    return data


def last_event(events: list[EgressEvent], count: int = 1) -> EgressEvent:
    poll(lambda: len(events) >= count, timeout_s=10, what=f"{count} egress event(s)")
    return events[count - 1]


def test_an_allowed_host_over_https_through_the_relay(
    proxy: EgressProxy, ca: trustme.CA, files: HttpsServer, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-1", allow=["files.test:443"])
    env = relay(lease)
    assert env["HTTPS_PROXY"] == env["https_proxy"] == env["ALL_PROXY"]
    assert env["NO_PROXY"] == "localhost,127.0.0.1,::1"
    body = opener(env, ca).open("https://files.test/hello", timeout=10).read()
    assert body == b"hello files.test /hello"
    event = last_event(events)
    assert (event.owner, event.host, event.port, event.outcome) == (
        "run-1",
        "files.test",
        443,
        "allowed",
    )
    assert event.address == files_address(files) and event.via == "proxy"
    assert event.bytes_out > 200 and event.bytes_in > 200  # the TLS handshake, both ways
    lease.close()


@pytest.mark.parametrize(
    ("url", "status", "reason"),
    [
        (
            "https://notlisted.example/",
            403,
            "egress denied: notlisted.example:443 is not on the allow-list",
        ),
        ("https://denied.test/", 403, "egress denied: denied.test:443 is on the deny-list"),
        ("https://10.0.0.5/", 403, "egress denied: 10.0.0.5 is a private address"),
        (
            "https://169.254.169.254/",
            403,
            "egress denied: 169.254.169.254 is a link-local address (cloud metadata)",
        ),
        (
            "https://[::ffff:a9fe:a9fe]/",
            403,
            "egress denied: ::ffff:a9fe:a9fe is a link-local address (cloud metadata)",
        ),
        ("https://127.0.0.2/", 403, "egress denied: 127.0.0.2:443 is not on the allow-list"),
        ("https://inside.test/", 502, "egress: cannot resolve inside.test"),
        ("https://nowhere.test/", 502, "egress: cannot resolve nowhere.test"),
        (
            "http://notlisted.example/x",
            403,
            "egress denied: notlisted.example:80 is not on the allow-list",
        ),
    ],
)
def test_refusals_answer_with_a_reason_the_code_can_read(
    proxy: EgressProxy,
    ca: trustme.CA,
    events: list[EgressEvent],
    url: str,
    status: int,
    reason: str,
) -> None:
    lease = proxy.open("run-2", allow=["*.test", "notlisted.example:8443"])
    with pytest.raises(urllib.error.URLError) as caught:
        opener(relay(lease), ca).open(url, timeout=10)
    if isinstance(caught.value, urllib.error.HTTPError):  # the answer to a plain http:// request
        caught.value.close()
        assert (caught.value.code, caught.value.reason) == (status, reason)
    else:  # urllib's words for a refused CONNECT
        assert f"Tunnel connection failed: {status} {reason}" in str(caught.value)
    event = last_event(events)
    assert event.outcome == "denied" and event.bytes_out == event.bytes_in == 0
    lease.close()


def test_a_name_that_resolves_to_a_refused_address_is_logged_with_the_address(
    proxy: EgressProxy, ca: trustme.CA, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-3", allow=["inside.test"])
    with pytest.raises(urllib.error.URLError, match=r"502 egress: cannot resolve inside\.test"):
        opener(relay(lease), ca).open("https://inside.test/", timeout=10)
    assert last_event(events).reason == "10.0.0.5 is a private address (an address of inside.test)"
    lease.close()


def test_only_the_checked_addresses_of_a_name_are_connected_to(
    proxy: EgressProxy, ca: trustme.CA, files: HttpsServer, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-4", allow=["mixed.test"])
    resolver = proxy.resolver
    assert isinstance(resolver, HostsResolver)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False  # the server's certificate names files.test
    handler = urllib.request.HTTPSHandler(context=context)
    env = relay(lease)
    proxies = urllib.request.ProxyHandler({"https": env["HTTPS_PROXY"]})
    # mixed.test answers 10.0.0.5 first, then the files server: the first lookup is used,
    # once, and refused as a whole (it is the only answer).
    with pytest.raises(urllib.error.URLError, match=r"cannot resolve mixed\.test"):
        urllib.request.build_opener(proxies, handler).open("https://mixed.test/", timeout=10)
    assert resolver.lookups.count("mixed.test") == 1
    lease.close()


def test_a_client_hello_for_another_name_closes_the_tunnel(
    proxy: EgressProxy, ca: trustme.CA, files: HttpsServer, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-5", allow=["files.test"])
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with raw_connect(lease, b"CONNECT files.test:443 HTTP/1.1\r\n\r\n") as sock:
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        with pytest.raises((ssl.SSLError, OSError)):  # the server has a cert for it too
            context.wrap_socket(sock, server_hostname="other.test").close()
    event = last_event(events)
    assert event.outcome == "sni_mismatch"
    assert event.reason == "the TLS ClientHello names 'other.test', not 'files.test'"
    assert files.served.count("/") == 0
    lease.close()


def test_no_tls_on_port_443_closes_the_tunnel(
    proxy: EgressProxy, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-6", allow=["files.test"])
    answer = exchange(lease, b"CONNECT files.test:443 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert last_event(events).outcome == "sni_mismatch"
    lease.close()


def test_a_malformed_request_is_answered_400(proxy: EgressProxy, events: list[EgressEvent]) -> None:
    lease = proxy.open("run-7", allow=["files.test"])
    answer = exchange(lease, b"BREW /pot HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 BREW /pot: only http:// URLs are forwarded")
    assert last_event(events).outcome == "malformed"
    lease.close()


def test_a_published_port_reaches_its_destination_and_nothing_else(
    proxy: EgressProxy, echo: EchoServer, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-8", allow=[], publish={"PG": f"db.test:{echo.port}"})
    env = relay(lease)
    host, port = env["AI_DATA_AGENT_EGRESS_PG"].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"SELECT 1")
        assert conn.recv(100) == b"SELECT 1"
        conn.sendall(b"CONNECT files.test:443 HTTP/1.1\r\n\r\n")  # not a proxy: just bytes
        assert conn.recv(100) == b"CONNECT files.test:443 HTTP/1.1\r\n\r\n"
    event = last_event(events)
    assert (event.host, event.port, event.via, event.outcome) == (
        "db.test",
        echo.port,
        "publish",
        "allowed",
    )
    assert (
        event.bytes_out == event.bytes_in == len(b"SELECT 1CONNECT files.test:443 HTTP/1.1\r\n\r\n")
    )
    lease.close()


def test_a_published_port_still_gets_the_address_checks(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent]
) -> None:
    with published_echo(files, echo, events, egress_allow_cidrs=[]) as (_, address):  # no loopback
        with socket.create_connection(address, timeout=10) as conn:
            assert conn.recv(100) == b""  # closed: no HTTP on a published port
    assert events[0].reason == f"{echo_address(echo)} is a loopback address (an address of db.test)"


def test_the_connection_cap_refuses_the_next_one_only(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent]
) -> None:
    with published_echo(files, echo, events, egress_max_connections=2) as (lease, address):
        held = [socket.create_connection(address, timeout=10) for _ in range(2)]
        for conn in held:
            conn.sendall(b"ping")
            assert conn.recv(10) == b"ping"
        answer = exchange(lease, b"CONNECT files.test:443 HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 403 egress denied: the sandbox has 2 connections open")
        held[0].sendall(b"still")  # the open ones go on
        assert held[0].recv(10) == b"still"
        for conn in held:
            conn.close()
        poll(lambda: lease.connections() == 0, timeout_s=10, what="the held connections ended")
        with socket.create_connection(address, timeout=10) as conn:
            conn.sendall(b"again")
            assert conn.recv(10) == b"again"


def test_the_byte_cap_ends_the_connection_that_crosses_it(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent], ca: trustme.CA
) -> None:
    proxy = make_proxy(files, echo, events, egress_max_bytes_in=300_000)
    try:
        lease = proxy.open("run-11", allow=["files.test"])
        web = opener(relay(lease), ca)
        assert web.open("https://files.test/big/1000", timeout=10).read() == b"x" * 1000
        with web.open("https://files.test/big/1000000", timeout=10) as response:
            with pytest.raises(http.client.IncompleteRead):
                response.read()
        capped = poll(
            lambda: [e for e in events if e.outcome == "capped"],
            timeout_s=10,
            what="a capped event",
        )
        assert capped[0].reason == "the sandbox's egress byte cap (300000 bytes in) is reached"
        assert capped[0].bytes_in <= 300_000
        with pytest.raises(urllib.error.URLError, match="403 egress denied: the sandbox's egress"):
            web.open("https://files.test/", timeout=10)
        lease.close()
    finally:
        proxy.close()


def test_an_idle_tunnel_is_closed(
    files: HttpsServer, echo: EchoServer, events: list[EgressEvent]
) -> None:
    with published_echo(files, echo, events, egress_idle_timeout_s=0.3) as (_, address):
        with socket.create_connection(address, timeout=10) as conn:
            assert conn.recv(10) == b""  # closed by the proxy after 0.3 s without data
        assert last_event(events).outcome == "idle"


def test_closing_the_lease_closes_every_tunnel_and_removes_its_sockets(
    proxy: EgressProxy, echo: EchoServer, events: list[EgressEvent]
) -> None:
    lease = proxy.open("run-13", allow=[], publish={"PG": f"db.test:{echo.port}"})
    host, port = relay(lease)["AI_DATA_AGENT_EGRESS_PG"].split(":")
    conns = [socket.create_connection((host, int(port)), timeout=10) for _ in range(3)]
    for conn in conns:
        conn.sendall(b"hi")
        assert conn.recv(10) == b"hi"
    assert lease.connections() == 3 and proxy.connections() == 3
    lease.close()
    lease.close()  # idempotent
    assert proxy.connections() == 0
    for conn in conns:
        assert conn.recv(10) == b""
        conn.close()
    assert not lease.host_dir.exists()
    assert [e.outcome for e in events] == ["closed"] * 3
    assert all(e.reason == "the run or session ended" for e in events)


def test_the_lease_folder_is_for_the_sandbox_user(proxy: EgressProxy) -> None:
    lease = proxy.open("run-14", allow=["files.test"], publish={"A_1": "db.test:1"})
    names = sorted(p.name for p in lease.host_dir.iterdir())
    assert names == ["proxy.sock", "publish-A_1.sock"]
    assert lease.host_dir.stat().st_mode & 0o777 == 0o755
    assert (lease.host_dir / "proxy.sock").stat().st_mode & 0o777 == 0o666
    assert lease.host_dir.parent.stat().st_mode & 0o777 == 0o700
    lease.close()


def test_a_sink_that_fails_does_not_stop_the_others(
    proxy: EgressProxy, events: list[EgressEvent]
) -> None:
    def broken(event: EgressEvent) -> None:
        raise RuntimeError("down")

    proxy.log.add_sink(broken)
    seen: list[EgressEvent] = []
    proxy.log.add_sink(seen.append)
    lease = proxy.open("run-15", allow=["files.test"])
    exchange(lease, b"CONNECT nope.example:443 HTTP/1.1\r\n\r\n")
    poll(lambda: seen, timeout_s=10, what="the last sink's event")
    lease.close()


def test_a_socket_folder_too_long_for_unix_sockets_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 90)
    proxy = EgressProxy(Settings(egress_allow=["*"], egress_socket_dir=deep))
    try:
        with pytest.raises(ConfigurationError, match="set a shorter egress_socket_dir"):
            proxy.open("run-16", allow=["files.test"])
    finally:
        proxy.close()


def test_a_missing_network_namespace_is_a_configuration_error(tmp_path: Path) -> None:
    proxy = EgressProxy(Settings(egress_allow=["*"]), netns=tmp_path / "no-such-netns")
    with pytest.raises(ConfigurationError, match="the egress proxy cannot start"):
        proxy.start()
    proxy.close()


def test_the_proxy_starts_again_after_close(proxy: EgressProxy, ca: trustme.CA) -> None:
    proxy.close()
    lease = proxy.open("run-17", allow=["files.test"])
    assert opener(relay(lease), ca).open("https://files.test/x", timeout=10).read() == (
        b"hello files.test /x"
    )
    lease.close()


def test_canary_servers_record_what_reaches_them() -> None:
    with Canary((loopback(), 0)) as canary:
        assert canary._sock is not None
        with socket.create_connection(canary._sock.getsockname()[:2], timeout=5) as conn:
            assert conn.recv(100).endswith(b"canary")
        assert len(canary.hits) == 1


def test_events_are_plain_data() -> None:
    event = EgressEvent(owner="run", host="files.test", port=443, outcome="allowed")
    assert json.loads(json.dumps(vars(event)))["outcome"] == "allowed"
