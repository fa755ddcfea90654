"""The egress proxy: per sandbox, a Unix socket that reaches exactly the hosts it was allowed.

    proxy = EgressProxy(settings)              # its own event-loop thread, started on demand
    lease = proxy.open("run-1", allow=["files.test:443"], publish={"PG": "db.test:5432"})
    spec = build_spec(..., egress_dir=lease.host_dir)   # bind-mounted into the sandbox
    ...                                        # the sandbox's relay connects to the sockets
    lease.close()                              # every tunnel closed, sockets and folder gone
    proxy.close()

A lease is a folder of its own with ``proxy.sock`` (HTTP proxy: ``CONNECT``
and ``http://`` requests) and one ``publish-NAME.sock`` per published port;
which socket a connection arrives on says which sandbox made it, and nothing
else. Every connection is checked (`policy`), resolved once, connected to
exactly an address that passed the checks, checked again for its TLS server
name on port 443 (`tls`), copied within the sandbox's caps (`tunnel`), and
logged (`log`). The sandbox itself has no network interface but ``lo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent.egress.connection import Connection, SandboxState
from ai_data_agent.egress.log import EgressLog
from ai_data_agent.egress.policy import Budget, Caps, Policy
from ai_data_agent.egress.resolver import Resolver, SystemResolver
from ai_data_agent.errors import ConfigurationError
from ai_data_agent.settings import Settings

__all__ = ["PROXY_SOCKET", "EgressLease", "EgressProxy", "enter_netns", "publish_socket"]

PROXY_SOCKET = "proxy.sock"
CALL_TIMEOUT_S = 30.0
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
CLONE_NEWNET = 0x40000000


def publish_socket(name: str) -> str:
    """The socket file of the published port ``name``, in a lease's folder."""
    return f"publish-{name}.sock"


class EgressLease:
    """A sandbox's place on the proxy, from before its container starts until it ends."""

    def __init__(self, proxy: EgressProxy, box: SandboxState) -> None:
        self._proxy = proxy
        self._box = box
        self.owner = box.owner
        self.host_dir = box.folder
        self.publish = tuple(box.policy.publish)
        self._closed = False

    def connections(self) -> int:
        """Connections of this sandbox in flight now."""
        return len(self._box.tasks)

    def close(self) -> None:
        """Close every connection of the sandbox and remove its sockets. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._proxy.release(self._box)


class EgressProxy:
    """The proxy of one process (see the module docstring). Thread-safe.

    ``resolver`` looks names up (the system's by default); ``netns``, a network
    namespace file (``/run/netns/NAME``), makes every outbound connection and
    lookup of the proxy happen in that namespace.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        log: EgressLog | None = None,
        netns: Path | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver or SystemResolver()
        self.log = log or EgressLog()
        self.netns = netns
        self.caps = Caps(
            max_connections=settings.egress_max_connections,
            max_bytes_out=settings.egress_max_bytes_out,
            max_bytes_in=settings.egress_max_bytes_in,
            idle_timeout_s=settings.egress_idle_timeout_s,
        )
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._base: Path | None = None
        self._own_base = False
        self._boxes: set[SandboxState] = set()

    # -- lifecycle (any thread) -------------------------------------------------------
    def start(self) -> None:
        """Start the event-loop thread (idempotent).

        Raises:
            ConfigurationError: the socket folder or the network namespace cannot be used.
        """
        with self._lock:
            if self._loop is not None:
                return
            self._base = self._make_base()
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._serve, args=(loop, ready, failure), name="egress-proxy", daemon=True
            )
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                if self._own_base:
                    shutil.rmtree(self._base, ignore_errors=True)
                raise ConfigurationError(f"the egress proxy cannot start: {failure[0]}")
            self._loop, self._thread = loop, thread
        logger.info("egress proxy started: sockets under {}", self._base)

    def close(self) -> None:
        """Close every lease and stop the thread. Idempotent; `start` (or `open`) starts it again."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        for box in list(self._boxes):
            self._call(loop, self._release(box))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CALL_TIMEOUT_S)
        if self._own_base and self._base is not None:
            shutil.rmtree(self._base, ignore_errors=True)

    def open(
        self,
        owner: str,
        *,
        allow: Sequence[str],
        publish: Mapping[str, str] | None = None,
        tenant: str | None = None,
    ) -> EgressLease:
        """A lease for the sandbox of run or session ``owner``, its sockets listening.

        Raises:
            ConfigurationError: the proxy cannot start, or a socket cannot be made.
            ValueError: a rule or a published destination that does not parse.
        """
        self.start()
        s = self.settings
        policy = Policy.build(
            allow=allow, deny=s.egress_deny, networks=s.egress_allow_cidrs, publish=publish
        )
        assert self._base is not None
        folder = self._base / secrets.token_hex(8)
        names = [PROXY_SOCKET] + [publish_socket(n) for n in policy.publish]
        longest = max(len(str(folder / n)) for n in names)
        if longest > MAX_SOCKET_PATH:
            raise ConfigurationError(
                f"egress socket paths under {self._base} are {longest} bytes long, over the "
                f"{MAX_SOCKET_PATH} a Unix socket allows: set a shorter egress_socket_dir"
            )
        box = SandboxState(owner, tenant, policy, Budget(self.caps), folder)
        loop = self._loop
        assert loop is not None
        self._call(loop, self._listen(box))
        self._boxes.add(box)
        return EgressLease(self, box)

    def release(self, box: SandboxState) -> None:
        loop = self._loop
        if loop is not None and box in self._boxes:
            self._call(loop, self._release(box))

    @property
    def socket_dir(self) -> Path | None:
        """The folder that holds every lease's folder (None until the proxy starts)."""
        return self._base

    def connections(self) -> int:
        """Connections in flight now, of every lease."""
        return sum(len(box.tasks) for box in list(self._boxes))

    # -- the loop thread ---------------------------------------------------------------
    def _make_base(self) -> Path:
        configured = self.settings.egress_socket_dir
        try:
            if configured is not None:
                configured.mkdir(mode=0o700, parents=True, exist_ok=True)
                return configured.resolve()
            self._own_base = True
            return Path(tempfile.mkdtemp(prefix="ai-data-agent-egress-"))
        except OSError as exc:
            raise ConfigurationError(f"cannot make the egress socket folder: {exc}") from exc

    def _serve(
        self, loop: asyncio.AbstractEventLoop, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        try:
            if self.netns is not None:
                enter_netns(self.netns)
                loop.set_default_executor(  # lookups happen in the namespace too
                    ThreadPoolExecutor(4, initializer=enter_netns, initargs=(self.netns,))
                )
            asyncio.set_event_loop(loop)
        except OSError as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=CALL_TIMEOUT_S)

    async def _listen(self, box: SandboxState) -> None:
        try:
            box.folder.mkdir(mode=0o755)
            box.folder.chmod(0o755)  # whatever the umask: the sandbox's user must enter it
            await self._bind(box, PROXY_SOCKET, None)
            for name in box.policy.publish:
                await self._bind(box, publish_socket(name), name)
        except OSError as exc:
            await self._release(box)
            raise ConfigurationError(f"cannot listen for the sandbox's egress: {exc}") from exc

    async def _bind(self, box: SandboxState, filename: str, published: str | None) -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            box.tasks.add(task)
            try:
                await Connection(box, self.resolver, self.log, (reader, writer), published).serve()
            finally:
                box.tasks.discard(task)

        path = box.folder / filename
        server = await asyncio.start_unix_server(accepted, path=str(path))
        box.servers.append(server)
        path.chmod(0o666)  # the sandbox's user (uid 1000) connects; only its folder holds it

    async def _release(self, box: SandboxState) -> None:
        self._boxes.discard(box)
        for server in box.servers:
            server.close()
        tasks = list(box.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in box.servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        shutil.rmtree(box.folder, ignore_errors=True)


def enter_netns(path: Path) -> None:
    """Move the calling thread into the network namespace at ``path``.

    Raises:
        OSError: no such namespace, or no permission (it needs CAP_SYS_ADMIN).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)
