"""Egress by allow-list in real sandboxes, on runc and gVisor: exactly the allowed hosts, nothing else.

Each run probes many cases at once (a container start per case would be slow)
and prints what it saw; the test checks that, the proxy's log, and that no
tunnel, socket folder or canary hit is left. Docs: docs/security.md "Egress"
names the test that covers each threat.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ai_data_agent import Executor, RunRequest
from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.egress.resolver import HostsResolver
from ai_data_agent.session_models import SessionRequest
from tests.support.egress_net import PrivateInternet
from tests.support.wait import poll

from .conftest import RUNTIMES

pytestmark = pytest.mark.integration

Build = Callable[..., tuple[Executor, list[EgressEvent]]]

PROBE = r"""
import json, os, socket, ssl, urllib.error, urllib.request

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=15) as answer:
            return "ok " + answer.read().decode()
    except urllib.error.HTTPError as exc:
        exc.close()
        return "http %d %s" % (exc.code, exc.reason)
    except urllib.error.URLError as exc:
        return "error %s" % exc.reason

out = {"interfaces": sorted(os.listdir("/sys/class/net"))}
for name, url in json.loads(os.environ["URLS"]).items():
    out[name] = get(url)

# A tunnel to files.test whose ClientHello names another host.
with socket.create_connection(("127.0.0.1", 3128), timeout=10) as sock:
    sock.sendall(b"CONNECT files.test:443 HTTP/1.1\r\n\r\n")
    out["connect"] = sock.recv(100).decode().split("\r\n")[0]
    try:
        ssl.create_default_context().wrap_socket(sock, server_hostname="mirror.test").close()
        out["sni"] = "handshake done"
    except (ssl.SSLError, OSError) as exc:
        out["sni"] = "closed: " + type(exc).__name__

# The published port: a database client without proxy support.
host, port = os.environ["AI_DATA_AGENT_EGRESS_PG"].split(":")
with socket.create_connection((host, int(port)), timeout=10) as conn:
    conn.sendall(b"SELECT 1")
    out["published"] = conn.recv(100).decode()

# Around the proxy: no route, no DNS.
for address, port in (("203.0.113.10", 443), ("10.0.0.5", 443), ("169.254.169.254", 80)):
    try:
        socket.create_connection((address, port), timeout=3).close()
        out["direct " + address] = "connected"
    except OSError:
        out["direct " + address] = "failed"
try:
    socket.getaddrinfo("files.test", 443)
    out["dns"] = "resolved"
except OSError:
    out["dns"] = "failed"
out["env"] = {k: os.environ.get(k) for k in ("HTTPS_PROXY", "http_proxy", "NO_PROXY")}

try:
    import requests
    out["requests_from"] = "installed"
except ImportError:  # gVisor has no install network: pip's own copy of requests
    from pip._vendor import requests
    out["requests_from"] = "pip"
out["requests"] = requests.get("https://files.test/requests", timeout=15).text
try:
    requests.get("https://evil.test/", timeout=15)
    out["requests_refused"] = "reached"
except requests.exceptions.ProxyError as exc:
    out["requests_refused"] = str(exc)
print(json.dumps(out))
"""

URLS = {
    "allowed": "https://files.test/hello",
    "not_listed": "https://evil.test/",
    "private_name": "https://inside.test/",
    "rebind_first": "https://rebind.test/one",
    "rebind_again": "https://rebind.test/two",
    "literal_listed_range": "https://203.0.113.10/",
    "literal_private": "https://10.0.0.5/",
    "literal_metadata": "http://169.254.169.254/latest/meta-data/",
    "literal_mapped_metadata": "http://[::ffff:169.254.169.254]/",
    "deny_listed": "http://mirror.test/",
}
NETWORK = {
    "allow": ["files.test", "rebind.test", "inside.test", "mirror.test"],
    "publish": {"PG": "db.test:5432"},
}
TUNNEL_FAILED = "error Tunnel connection failed: "
EXPECTED = {
    "allowed": "ok hello files.test /hello",
    "not_listed": TUNNEL_FAILED + "403 egress denied: evil.test:443 is not on the allow-list",
    "private_name": TUNNEL_FAILED + "502 egress: cannot resolve inside.test",
    "rebind_first": "ok hello rebind.test /one",
    "rebind_again": TUNNEL_FAILED + "502 egress: cannot resolve rebind.test",
    "literal_listed_range": TUNNEL_FAILED
    + "403 egress denied: 203.0.113.10:443 is not on the allow-list",
    "literal_private": TUNNEL_FAILED + "403 egress denied: 10.0.0.5 is a private address",
    "literal_metadata": "http 403 egress denied: 169.254.169.254 is a link-local address "
    "(cloud metadata)",
    "literal_mapped_metadata": "http 403 egress denied: ::ffff:a9fe:a9fe is a link-local "
    "address (cloud metadata)",
    "deny_listed": "http 403 egress denied: mirror.test:80 is on the deny-list",
    "connect": "HTTP/1.1 200 Connection established",
    "published": "SELECT 1",
    "direct 203.0.113.10": "failed",
    "direct 10.0.0.5": "failed",
    "direct 169.254.169.254": "failed",
    "dns": "failed",
    "requests": "hello files.test /requests",
    "interfaces": ["lo"],
}


def assert_nothing_left(executor: Executor) -> None:
    proxy = executor.egress
    assert proxy is not None
    poll(lambda: proxy.connections() == 0, timeout_s=10, what="no tunnel open after the run")
    assert proxy.socket_dir is not None and list(proxy.socket_dir.iterdir()) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_run_reaches_exactly_its_allowed_hosts(
    runtime: str, egress_executor: Build, internet: PrivateInternet
) -> None:
    executor, events = egress_executor(runtime)
    requirements = ["requests"] if runtime == "runc" else []  # runsc has no install network
    result = executor.run(
        RunRequest(
            code=PROBE,
            network=NETWORK,
            env={"URLS": json.dumps(URLS)},
            requirements=requirements,
            timeout_s=60,
        ),
        run_id=f"egress-{runtime}",
    )
    assert result.status == "succeeded", (result.error, result.stderr[-3000:])
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert {k: seen[k] for k in EXPECTED} == EXPECTED
    assert seen["sni"].startswith("closed: ")
    assert seen["env"] == {
        "HTTPS_PROXY": "http://127.0.0.1:3128",
        "http_proxy": "http://127.0.0.1:3128",
        "NO_PROXY": "localhost,127.0.0.1,::1",
    }
    assert seen["requests_from"] == ("installed" if requirements else "pip")
    assert "403 egress denied: evil.test:443 is not on the allow-list" in seen["requests_refused"]
    # The files server saw exactly the allowed requests; the canaries nothing (autouse check).
    assert sorted(internet.files.served[-3:]) == ["/hello", "/one", "/requests"]
    assert_nothing_left(executor)
    # Names off the list are never looked up (no DNS exfiltration); listed ones once a connection.
    assert executor.egress is not None and isinstance(executor.egress.resolver, HostsResolver)
    lookups = executor.egress.resolver.lookups
    assert "evil.test" not in lookups and lookups.count("rebind.test") == 2
    by_outcome: dict[str, list[EgressEvent]] = {}
    for event in events:
        assert event.owner == f"egress-{runtime}"
        by_outcome.setdefault(event.outcome, []).append(event)
    allowed = {(e.host, e.address, e.via) for e in by_outcome["allowed"]}
    assert allowed == {
        ("files.test", PrivateInternet.FILES, "proxy"),
        ("rebind.test", PrivateInternet.FILES, "proxy"),
        ("db.test", PrivateInternet.ECHO, "publish"),
    }
    assert len(by_outcome["denied"]) == 9
    assert [e.host for e in by_outcome["sni_mismatch"]] == ["files.test"]
    assert all(e.bytes_in > 0 for e in by_outcome["allowed"])


CAPS_PROBE = r"""
import os, socket, urllib.error, urllib.request
host, port = os.environ["AI_DATA_AGENT_EGRESS_PG"].split(":")
held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(2)]
for conn in held:
    conn.sendall(b"ping")
    assert conn.recv(10) == b"ping"
try:
    urllib.request.urlopen("https://files.test/third", timeout=15)
    print("third: reached")
except urllib.error.URLError as exc:
    print("third:", exc.reason)
for conn in held:
    conn.close()
try:
    body = urllib.request.urlopen("https://files.test/big/1000000", timeout=15).read()
    print("big: whole", len(body))
except Exception as exc:
    print("big: cut", type(exc).__name__)
print("the run goes on")
"""


def test_caps_end_the_offending_connection_not_the_run(egress_executor: Build) -> None:
    executor, events = egress_executor(
        "runc", egress_max_connections=2, egress_max_bytes_in=200_000
    )
    result = executor.run(RunRequest(code=CAPS_PROBE, network=NETWORK, timeout_s=60))
    assert result.status == "succeeded", (result.error, result.stderr[-3000:])
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "third: Tunnel connection failed: 403 egress denied: the sandbox has 2 connections "
        "open, the most allowed"
    )
    assert lines[1] == "big: cut IncompleteRead"
    assert lines[2] == "the run goes on"
    capped = [e for e in events if e.outcome == "capped"]
    assert len(capped) == 1 and capped[0].bytes_in <= 200_000
    assert_nothing_left(executor)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_session_keeps_its_allow_list_and_its_tunnels_end_with_it(
    runtime: str, egress_executor: Build
) -> None:
    executor, events = egress_executor(runtime)
    request = SessionRequest(network=NETWORK)
    with executor.session(request) as session:
        cell = session.run(
            "import os, socket, urllib.request\n"
            "host, port = os.environ['AI_DATA_AGENT_EGRESS_PG'].split(':')\n"
            "conn = socket.create_connection((host, int(port)), timeout=10)\n"
            "conn.sendall(b'kept'); assert conn.recv(10) == b'kept'\n"
            "urllib.request.urlopen('https://files.test/cell', timeout=15).read().decode()"
        )
        assert cell.status == "succeeded", cell.error
        assert cell.result is not None
        assert cell.result.data["text/plain"] == "'hello files.test /cell'"
        proxy = executor.egress
        assert proxy is not None
        # The HTTPS request's tunnel ends a moment after the cell; the database connection stays.
        poll(lambda: proxy.connections() == 1, timeout_s=10, what="only the kept connection open")
    assert_nothing_left(executor)  # closing the session closed it
    # Ended by the lease's close ("closed"), or a moment before, by the sandbox's removal.
    [ended] = [e for e in events if e.via == "publish"]
    assert ended.outcome in ("closed", "allowed") and ended.bytes_out == 4


def test_a_run_without_an_allow_list_has_no_way_out(
    egress_executor: Build, internet: PrivateInternet
) -> None:
    executor, events = egress_executor("runc")
    code = (
        "import os, socket\n"
        "print(sorted(os.listdir('/sys/class/net')), os.environ.get('HTTPS_PROXY'),"
        " os.path.exists('/opt/ai-data-agent/egress'))\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 3128), timeout=3)\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    result = executor.run(RunRequest(code=code))
    assert result.status == "succeeded", (result.error, result.stderr)
    assert result.stdout.splitlines() == ["['lo'] None False", "ConnectionRefusedError"]
    assert events == []


def test_rules_beyond_the_operators_are_refused_before_anything_starts(
    egress_executor: Build,
) -> None:
    from ai_data_agent.errors import EgressRefused

    executor, events = egress_executor("runc")
    with pytest.raises(EgressRefused, match=r"evil\.test is not on this server's"):
        executor.run(RunRequest(code="print(1)", network={"allow": ["evil.test"]}))
    assert events == []
    assert executor.egress is not None and executor.egress.socket_dir is None  # never started
