"""Servers the egress tests reach (or must never reach), on the host or in a network namespace.

    ca = trustme.CA()
    with HttpsServer(ca, ["files.test"], ("127.0.0.5", 0)) as files, Canary(("127.0.0.9", 0)) as c:
        ...                       # files.port; c.hits stays [] unless something reached it
    with PrivateInternet.create(ca) as net:   # root: a namespace of its own (see below)
        net.files, net.echo, net.canaries, net.hosts_text, net.netns

Each server binds and accepts on a thread of its own; with ``netns`` that thread
first enters the namespace, so the server lives in it. `PrivateInternet` is
the integration tests' private internet: a namespace made with ``ip netns``,
documentation addresses on its loopback interface (HTTPS servers on
203.0.113.10 and .11, a TCP echo server on 203.0.113.20), and canaries on
169.254.169.254 and 10.0.0.5 that record anything reaching them.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

from ai_data_agent.egress.proxy import enter_netns

__all__ = ["Canary", "EchoServer", "HttpsServer", "PrivateInternet", "big_body"]

BIG_CHUNK = b"x" * 65536


def big_body(size: int) -> Iterator[bytes]:
    while size > 0:
        yield BIG_CHUNK[:size]
        size -= len(BIG_CHUNK)


class _Server:
    """A TCP listener whose connections are each handled on a thread."""

    def __init__(self, address: tuple[str, int], netns: Path | None = None) -> None:
        self.netns = netns
        self.hits: list[tuple[str, int]] = []
        self._sock: socket.socket | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, args=(address,), daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        # shutdown() wakes a thread blocked in accept() or recv(); close() alone does not.
        for sock in [self._sock, *self._conns]:
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # not connected (any more)
        self._thread.join(5)
        if self._sock is not None:
            self._sock.close()

    def _serve(self, address: tuple[str, int]) -> None:
        try:
            if self.netns is not None:
                enter_netns(self.netns)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(64)
            self._sock = sock
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._ready.set()
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return  # closed
            self.hits.append(peer)
            self._conns.append(conn)
            threading.Thread(target=self._handle_safely, args=(conn,), daemon=True).start()

    def _handle_safely(self, conn: socket.socket) -> None:
        try:
            with conn:
                self.handle(conn)
        except OSError:
            pass  # the proxy closed the tunnel: what several tests do on purpose
        finally:
            if conn in self._conns:
                self._conns.remove(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError


class EchoServer(_Server):
    """Sends back what it receives (a database stand-in)."""

    def handle(self, conn: socket.socket) -> None:
        while data := conn.recv(65536):
            conn.sendall(data)


class Canary(_Server):
    """Accepts and records (``hits``); any hit fails the test that owns it."""

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncanary")


class HttpsServer(_Server):
    """HTTPS with a certificate from ``ca`` for ``names``: ``GET /any`` answers
    ``hello <Host> <path>``, ``GET /big/<n>`` answers n bytes."""

    def __init__(
        self,
        ca: trustme.CA,
        names: list[str],
        address: tuple[str, int],
        netns: Path | None = None,
    ) -> None:
        super().__init__(address, netns)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*names).configure_cert(self.context)
        self.served: list[str] = []

    def handle(self, conn: socket.socket) -> None:
        with self.context.wrap_socket(conn, server_side=True) as tls:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = tls.recv(65536)
                if not chunk:
                    return
                head += chunk
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            host = next(
                (v.split(":", 1)[1].strip() for v in lines if v.lower().startswith("host:")), ""
            )
            self.served.append(path)
            if path.startswith("/big/"):
                size = int(path.removeprefix("/big/"))
                tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                for chunk in big_body(size):
                    tls.sendall(chunk)
                return
            body = f"hello {host} {path}".encode()
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class PrivateInternet:
    """A network namespace with servers on documentation addresses and canaries (root only)."""

    name: str
    netns: Path
    ca: trustme.CA
    files: HttpsServer
    mirror: HttpsServer
    echo: EchoServer
    canaries: list[Canary]
    stack: ExitStack = field(default_factory=ExitStack)

    FILES = "203.0.113.10"
    MIRROR = "203.0.113.11"
    ECHO = "203.0.113.20"
    METADATA = "169.254.169.254"
    PRIVATE = "10.0.0.5"

    @classmethod
    @contextmanager
    def create(cls, ca: trustme.CA) -> Iterator[PrivateInternet]:
        name = f"ada-egress-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        _ip("netns", "add", name)
        try:
            _ip("-n", name, "link", "set", "lo", "up")
            for address in (cls.FILES, cls.MIRROR, cls.ECHO, cls.METADATA, cls.PRIVATE):
                _ip("-n", name, "addr", "add", f"{address}/32", "dev", "lo")
            netns = Path("/run/netns") / name
            with ExitStack() as stack:
                files = stack.enter_context(
                    HttpsServer(ca, ["files.test", "rebind.test"], (cls.FILES, 443), netns)
                )
                mirror = stack.enter_context(
                    HttpsServer(ca, ["mirror.test"], (cls.MIRROR, 443), netns)
                )
                echo = stack.enter_context(EchoServer((cls.ECHO, 5432), netns))
                canaries = [
                    stack.enter_context(Canary((address, port), netns))
                    for address in (cls.METADATA, cls.PRIVATE)
                    for port in (80, 443, 5432)
                ]
                yield cls(name, netns, ca, files, mirror, echo, canaries, stack)
        finally:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)

    @property
    def hosts_text(self) -> str:
        """The ``/etc/hosts`` lines the proxy's resolver reads: the rebinding name answers
        the files server's address first and the private canary's after."""
        return "\n".join(
            [
                f"{self.FILES} files.test",
                f"{self.MIRROR} mirror.test",
                f"{self.ECHO} db.test",
                f"{self.PRIVATE} inside.test",
                f"{self.METADATA} metadata.test",
                f"{self.FILES} rebind.test",
                f"{self.PRIVATE} rebind.test",
            ]
        )

    def canary_hits(self) -> list[tuple[str, int]]:
        return [hit for canary in self.canaries for hit in canary.hits]
