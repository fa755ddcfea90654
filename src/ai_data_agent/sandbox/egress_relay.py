"""The sandbox's end of egress: local TCP ports relayed to the proxy's Unix sockets.

    env = start({"dir": "/opt/ai-data-agent/egress", "publish": ["PG"]})
    # env: HTTP_PROXY=http://127.0.0.1:3128 (and HTTPS_PROXY, ALL_PROXY, lower case),
    #      NO_PROXY=localhost,127.0.0.1,::1, AI_DATA_AGENT_EGRESS_PG=127.0.0.1:<port>

The sandbox has no network interface but ``lo``. The daemon's proxy listens
on Unix sockets in a folder bind-mounted into this sandbox; this relay
listens on ``127.0.0.1:3128`` (the HTTP proxy, for urllib, requests, httpx,
pip and the like) and on one free local port per published destination (for
clients that do not speak proxies, such as database drivers), and copies
bytes between each accepted connection and a fresh connection to the
matching socket. All checks happen in the proxy; this only moves bytes. One
thread, one selector, whatever the number of connections (threads count
against the sandbox's pids limit).

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROXY_PORT = 3128
PROXY_SOCKET = "proxy.sock"
ENV_PREFIX = "AI_DATA_AGENT_EGRESS_"
BUFFER = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
NO_PROXY = "localhost,127.0.0.1,::1"


def publish_socket(name: str) -> str:
    """The socket file of the published port ``name`` (the proxy's `publish_socket`)."""
    return f"publish-{name}.sock"


class _End:
    """One socket of a relayed pair, and the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peer = self  # set by `_pair`
        self.pending = bytearray()
        self.eof = False  # nothing more will be read from this socket
        self.shut = False  # its write side is shut (the peer's end of file passed on)
        self.closed = False
        self.watched = False  # registered with the selector


class Relay:
    """Listening ports and the connections they relay, on one selector thread."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.selector = selectors.DefaultSelector()

    def listen(self, port: int, socket_name: str) -> int:
        """Relay ``127.0.0.1:port`` (0: any free port) to ``socket_name``; the port bound."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(64)
        server.setblocking(False)
        self.selector.register(server, selectors.EVENT_READ, os.path.join(self.folder, socket_name))
        return int(server.getsockname()[1])

    def run(self) -> None:
        while True:
            for key, mask in self.selector.select():
                if isinstance(key.data, str):
                    self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                    continue
                try:
                    self._service(key.data, mask)
                except (OSError, ValueError, KeyError):  # one pair's trouble ends that pair only
                    self._close(key.data)

    def _accept(self, server: socket.socket, path: str) -> None:
        try:
            client, _ = server.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.settimeout(CONNECT_TIMEOUT_S)
            upstream.connect(path)
        except OSError:
            upstream.close()
            client.close()  # the proxy is gone (the run is ending): refuse like a closed port
            return
        a, b = _End(client), _End(upstream)
        a.peer, b.peer = b, a
        for end in (a, b):
            end.sock.setblocking(False)
            self._update(end)

    def _service(self, end: _End, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                data = end.sock.recv(BUFFER)
                if data:
                    end.peer.pending += data
                else:
                    end.eof = True
            if mask & selectors.EVENT_WRITE and end.pending:
                del end.pending[: end.sock.send(end.pending)]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(end)
            return
        self._update(end)
        self._update(end.peer)

    def _update(self, end: _End) -> None:
        """Pass on an end of file, close a finished pair, else watch what can move now."""
        if end.closed:
            return
        if end.peer.eof and not end.pending and not end.shut:
            end.shut = True
            try:
                end.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the other side is gone already
        if end.shut and end.peer.shut:
            self._close(end)
            return
        events = 0
        if not end.eof and len(end.peer.pending) < BUFFER:
            events |= selectors.EVENT_READ
        if end.pending:
            events |= selectors.EVENT_WRITE
        if events and end.watched:
            self.selector.modify(end.sock, events, end)
        elif events:
            self.selector.register(end.sock, events, end)
        elif end.watched:
            self.selector.unregister(end.sock)  # until its peer has bytes for it
        end.watched = bool(events)

    def _close(self, end: _End) -> None:
        for side in (end, end.peer):
            if side.closed:
                continue
            side.closed = True
            if side.watched:
                self.selector.unregister(side.sock)
                side.watched = False
            side.sock.close()


def start(egress: dict[str, Any]) -> dict[str, str]:
    """Listen, start the relay thread, and return the variables the code gets."""
    relay = Relay(str(egress["dir"]))
    port = relay.listen(int(egress.get("port", PROXY_PORT)), PROXY_SOCKET)
    url = f"http://127.0.0.1:{port}"
    env = {}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = url
    env["NO_PROXY"] = env["no_proxy"] = NO_PROXY
    for name in egress.get("publish") or []:
        env[ENV_PREFIX + name] = f"127.0.0.1:{relay.listen(0, publish_socket(name))}"
    thread = threading.Thread(target=relay.run, name="egress-relay")
    thread.daemon = True
    thread.start()
    return env
