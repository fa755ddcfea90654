"""A body over the cap gets a readable 413 from the real daemon, whatever the client.

Most clients send the whole body before they read the answer; they see the
413 only if the daemon reads (and drops) the rest of the body before it
closes. Bodies are streamed from generators, never held in memory. A body
that keeps coming past the discard bounds ends with the connection closed.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import requests

from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
CHUNK = b"x" * 65536
CLIENT_TIMEOUT_S = 60.0
Answer = tuple[int, bytes]


def chunks(size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        yield CHUNK[: min(left, len(CHUNK))]
        left -= len(CHUNK)


class StreamedBody:
    """A file-like body of known length, produced as it is read."""

    def __init__(self, size: int) -> None:
        self.left = size

    def __len__(self) -> int:  # requests sends Content-Length for it
        return self.left

    def read(self, n: int = -1) -> bytes:
        n = len(CHUNK) if n < 0 else min(n, len(CHUNK))
        data = CHUNK[: min(n, self.left)]
        self.left -= len(data)
        return data


def send_urllib(url: str, headers: dict[str, str], size: int, declared: bool, tmp: Path) -> Answer:
    headers = dict(headers, **({"Content-Length": str(size)} if declared else {}))
    request = urllib.request.Request(url, data=chunks(size), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def send_httpx(url: str, headers: dict[str, str], size: int, declared: bool, tmp: Path) -> Answer:
    headers = dict(headers, **({"Content-Length": str(size)} if declared else {}))
    response = httpx.post(url, content=chunks(size), headers=headers, timeout=CLIENT_TIMEOUT_S)
    return response.status_code, response.content


def send_requests(
    url: str, headers: dict[str, str], size: int, declared: bool, tmp: Path
) -> Answer:
    body = StreamedBody(size) if declared else chunks(size)
    response = requests.post(url, data=body, headers=headers, timeout=CLIENT_TIMEOUT_S)
    return response.status_code, response.content


def send_curl(url: str, headers: dict[str, str], size: int, declared: bool, tmp: Path) -> Answer:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    header_args = [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]
    argv = [curl, "-sS", "-X", "POST", *header_args, "-w", "\n%{http_code}", url]
    if declared:  # a file of known size: Content-Length (sparse, so no disk is used)
        body = tmp / "body"
        with body.open("wb") as fh:
            fh.truncate(size)
        out = subprocess.run([*argv, "-T", str(body)], capture_output=True, timeout=60).stdout
    else:  # from a pipe: chunked
        out = _curl_from_pipe([*argv, "-T", "-"], size)
    body_text, _, status = out.rpartition(b"\n")
    return int(status), body_text


def _curl_from_pipe(argv: list[str], size: int) -> bytes:
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            for chunk in chunks(size):
                proc.stdin.write(chunk)
        except BrokenPipeError:
            pass  # curl saw the 413 and stopped reading its input
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        out = proc.stdout.read()
        assert proc.wait(CLIENT_TIMEOUT_S) == 0, out
    return out


CLIENTS: dict[str, Callable[..., Answer]] = {
    "urllib": send_urllib,
    "httpx": send_httpx,
    "requests": send_requests,
    "curl": send_curl,
}


def headers_for(daemon: Daemon) -> dict[str, str]:
    return {"Authorization": f"Bearer {daemon.token}", "Content-Type": "application/json"}


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size_mb", [64, 300], ids=["64MB", "300MB"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_an_over_large_body_gets_a_readable_413(
    shared_daemon: Daemon, client: str, size_mb: int, declared: bool, tmp_path: Path
) -> None:
    url, headers = f"{shared_daemon.url}/v1/runs", headers_for(shared_daemon)
    started = time.monotonic()
    status, body = CLIENTS[client](url, headers, size_mb * MiB, declared, tmp_path)
    elapsed = time.monotonic() - started

    assert status == 413, (status, body[:300], shared_daemon.log())
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert elapsed < 30, f"{elapsed:.1f} s"


def multipart_upload(size: int) -> Iterator[bytes]:
    """A run with one input file of ``size`` bytes, as multipart/form-data (it streams
    through to the route, which answers 413 once it has read past the upload cap)."""
    yield (
        b'--B\r\nContent-Disposition: form-data; name="request"\r\n\r\n'
        b'{"code": "print(1)"}\r\n'
        b'--B\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    yield from chunks(size)
    yield b"\r\n--B--\r\n"


@pytest.mark.parametrize("client", ["urllib", "httpx", "requests"])
def test_an_over_large_upload_gets_a_readable_413_from_the_route(
    shared_daemon: Daemon, client: str
) -> None:
    url = f"{shared_daemon.url}/v1/runs"
    headers = dict(
        headers_for(shared_daemon), **{"Content-Type": "multipart/form-data; boundary=B"}
    )
    started = time.monotonic()
    if client == "urllib":
        request = urllib.request.Request(url, data=multipart_upload(300 * MiB), headers=headers)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_S)
        status, body = raised.value.code, raised.value.read()
    elif client == "httpx":
        response = httpx.post(url, content=multipart_upload(300 * MiB), headers=headers, timeout=60)
        status, body = response.status_code, response.content
    else:
        answer = requests.post(url, data=multipart_upload(300 * MiB), headers=headers, timeout=60)
        status, body = answer.status_code, answer.content

    assert status == 413, (status, body[:300], shared_daemon.log())
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert time.monotonic() - started < 30


def test_benign_twin_a_body_within_the_cap_is_a_run(shared_daemon: Daemon) -> None:
    code = "print(len('" + "x" * (512 * 1024) + "'))"
    response = shared_daemon.client().post("/v1/runs", json={"code": code})
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == f"{512 * 1024}\n"


# -- past the discard bounds ------------------------------------------------------
CAP = 64 * 1024
DISCARD_BYTES = 8 * MiB
DISCARD_S = 2.0
SAFETY_S = 30.0  # the client's own bound: the test fails rather than sending forever


@pytest.fixture(scope="module")
def bounded_daemon(
    settings_kwargs: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    values = {
        **settings_kwargs,
        "max_body_bytes": CAP,
        "body_discard_max_bytes": DISCARD_BYTES,
        "body_discard_timeout_s": DISCARD_S,
    }
    daemon = Daemon.start(tmp_path_factory.mktemp("bounded-data"), values)
    yield daemon
    daemon.stop()
    print(f"--- daemon log ({daemon.url}) ---\n{daemon.log()}")


def endless_upload(daemon: Daemon, pause_s: float) -> tuple[float, int, bytes]:
    """POST a chunked body that never ends; (seconds until the daemon closed, bytes sent, reply)."""
    host, port = "127.0.0.1", daemon.port
    head = (
        f"POST /v1/runs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {daemon.token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    reply = b""
    sent = 0
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode())
        started = time.monotonic()
        while time.monotonic() - started < SAFETY_S:
            try:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    data = sock.recv(65536)
                    if not data:
                        break  # the daemon closed cleanly
                    reply += data
                sock.sendall(piece)
                sent += len(piece)
            except (ConnectionResetError, BrokenPipeError):
                break
            time.sleep(pause_s)
        else:
            pytest.fail(f"the daemon still read the body after {SAFETY_S:g} s ({sent} bytes)")
        return time.monotonic() - started, sent, reply


def test_a_body_past_the_byte_bound_ends_with_the_connection_closed(
    bounded_daemon: Daemon,
) -> None:
    elapsed, sent, reply = endless_upload(bounded_daemon, pause_s=0)

    assert elapsed < DISCARD_S + 5, f"{elapsed:.1f} s"
    # The cap, the discard bound, and what the two kernels' socket buffers held.
    assert CAP + DISCARD_BYTES < sent < CAP + DISCARD_BYTES + 32 * MiB, sent
    assert reply == b"" or reply.startswith(b"HTTP/1.1 413 "), reply[:200]


def test_a_slow_body_ends_at_the_time_bound_after_its_413(bounded_daemon: Daemon) -> None:
    elapsed, sent, reply = endless_upload(bounded_daemon, pause_s=0.05)

    assert DISCARD_S - 0.5 < elapsed < DISCARD_S + 5, f"{elapsed:.1f} s"
    assert sent < DISCARD_BYTES
    # Read between the pieces: the 413 arrived before the close.
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:200]
    assert b"connection: close" in reply.lower()
    assert b"payload_too_large" in reply


def test_the_daemon_serves_on_after_lingering(bounded_daemon: Daemon) -> None:
    client = bounded_daemon.client()
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/runs", json={"code": "print(1)"}).json()["stdout"] == "1\n"
