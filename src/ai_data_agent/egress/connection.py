"""One connection from a sandbox through the proxy: check, resolve once, connect, verify, copy, log.

    await Connection(box, resolver, log, (reader, writer), published=None).serve()

What the sandbox is told: a refused destination answers ``403`` with the
reason as the status line's phrase (``egress denied: 10.0.0.5 is a private
address``); a name that does not resolve, or resolves only to refused
addresses, answers ``502 egress: cannot resolve NAME`` either way, like a DNS
failure, so the sandbox learns nothing of internal names (the log has the
addresses and why). A published port has no HTTP: a refusal closes it.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_data_agent.egress.http import parse_request, refusal_bytes
from ai_data_agent.egress.log import EgressEvent, EgressLog, Outcome
from ai_data_agent.egress.policy import Budget, Policy
from ai_data_agent.egress.resolver import Resolver
from ai_data_agent.egress.rules import Destination, IPAddress
from ai_data_agent.egress.tls import MAX_HELLO_BYTES, NO_SNI, client_hello_sni
from ai_data_agent.egress.tunnel import Stream, Tunnel, close_writer

__all__ = ["Connection", "Refusal", "SandboxState"]

HEAD_TIMEOUT_S = 10.0
HELLO_TIMEOUT_S = 10.0
LINGER_S = 1.0
LINGER_BYTES = 1024 * 1024
TLS_PORT = 443
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


@dataclass(eq=False)
class SandboxState:
    """One lease on the proxy's loop: its policy, budget, servers and connections in flight."""

    owner: str
    tenant: str | None
    policy: Policy
    budget: Budget
    folder: Path
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


@dataclass(frozen=True)
class Refusal:
    """Why a connection ends before its tunnel, and the answer to send (None: just close)."""

    outcome: Outcome
    reason: str
    answer: bytes | None = None


class Connection:
    def __init__(
        self,
        box: SandboxState,
        resolver: Resolver,
        log: EgressLog,
        stream: Stream,
        published: str | None,
    ) -> None:
        self.box = box
        self.resolver = resolver
        self.log = log
        self.stream = stream
        self.published = published
        self.host = "-"
        self.port = 0
        self.address: str | None = None
        self.upstream: Stream | None = None
        self.tunnel = Tunnel(box.budget, idle_timeout_s=box.budget.caps.idle_timeout_s)

    async def serve(self) -> None:
        """The whole connection; one log event when it ends (also when it is cancelled)."""
        outcome: Outcome = "closed"
        reason: str | None = "the run or session ended"
        refused = self.box.budget.admit()
        try:
            if refused is not None:
                opened: Refusal | bytes = self._refuse("denied", 403, refused)
            elif self.published is not None:
                opened = await self._open(self.box.policy.publish[self.published], published=True)
            else:
                opened = await self._proxied()
            if isinstance(opened, Refusal):
                outcome, reason = opened.outcome, opened.reason
                if opened.answer is not None:
                    await _answer(self.stream, opened.answer)
            else:
                assert self.upstream is not None
                outcome = await self.tunnel.run(self.stream, self.upstream, first=opened)
                reason = self.box.budget.exhausted if outcome == "capped" else None
        finally:
            if refused is None:
                self.box.budget.release()
            if self.upstream is not None:
                await close_writer(self.upstream[1])
            await close_writer(self.stream[1])
            self._record(outcome, reason)

    def _refuse(self, outcome: Outcome, status: int, reason: str, told: str = "") -> Refusal:
        """A refusal; the sandbox is told ``told`` (default ``egress denied: <reason>``)."""
        if self.published is not None:
            return Refusal(outcome, reason)
        return Refusal(outcome, reason, refusal_bytes(status, told or f"egress denied: {reason}"))

    def _record(self, outcome: Outcome, reason: str | None) -> None:
        self.log.record(
            EgressEvent(
                owner=self.box.owner,
                tenant=self.box.tenant,
                host=self.host,
                port=self.port,
                outcome=outcome,
                address=self.address,
                bytes_out=self.tunnel.bytes_out,
                bytes_in=self.tunnel.bytes_in,
                reason=reason,
                via="publish" if self.published is not None else "proxy",
            )
        )

    async def _proxied(self) -> Refusal | bytes:
        """The request head, its checks and the upstream connection; the bytes to send
        upstream first (the forwarded head, or a checked ClientHello)."""
        reader, writer = self.stream
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            request = parse_request(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
            reason = f"no complete request head: {type(exc).__name__}"
            return self._refuse("malformed", 400, reason, reason)
        except ValueError as exc:
            return self._refuse("malformed", 400, str(exc), str(exc))
        opened = await self._open(request.destination, published=False)
        if isinstance(opened, Refusal) or request.forward is not None:
            return opened if isinstance(opened, Refusal) else request.forward or b""
        writer.write(ESTABLISHED)
        await writer.drain()
        if request.destination.port != TLS_PORT:
            return b""
        return await self._client_hello(request.destination)

    async def _open(self, destination: Destination, *, published: bool) -> Refusal | bytes:
        """Connect ``self.upstream`` to an address that passed every check."""
        self.host, self.port = str(destination.host), destination.port
        policy = self.box.policy
        refused = policy.refuse_destination(destination, published=published)
        if refused is not None:
            return self._refuse("denied", 403, refused)
        if isinstance(destination.host, str):
            found = await self.resolver.resolve(destination.host)
            addresses, refused = policy.usable_addresses(destination.host, found)
            if refused is not None:
                told = f"egress: cannot resolve {destination.host}"
                return self._refuse("denied", 502, refused, told)
        else:
            addresses = [destination.host]
        for address in addresses:
            self.upstream = await self._connect(address, destination.port)
            if self.upstream is not None:
                self.address = str(address)
                return b""
        reason = f"egress: cannot connect to {destination}"
        return self._refuse("unreachable", 502, reason, reason)

    async def _connect(self, address: IPAddress, port: int) -> Stream | None:
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            timeout = self.box.budget.caps.connect_timeout_s
            await asyncio.wait_for(loop.sock_connect(sock, (str(address), port)), timeout)
            return await asyncio.open_connection(sock=sock)
        except (OSError, TimeoutError):
            sock.close()
            return None

    async def _client_hello(self, destination: Destination) -> Refusal | bytes:
        """The ClientHello, once its server name is checked against the CONNECT host (a
        refusal closes the tunnel: it was answered 200 already)."""
        reader = self.stream[0]
        data = b""
        sni: str | None = None
        try:
            while sni is None and len(data) < MAX_HELLO_BYTES:
                chunk = await asyncio.wait_for(reader.read(MAX_HELLO_BYTES), HELLO_TIMEOUT_S)
                if not chunk:
                    break
                data += chunk
                sni = client_hello_sni(data)
        except (ValueError, TimeoutError) as exc:
            return Refusal("sni_mismatch", f"no TLS ClientHello on port 443: {exc}")
        wanted = destination.host if isinstance(destination.host, str) else NO_SNI
        if sni is None:
            return Refusal("sni_mismatch", "the TLS ClientHello did not arrive whole")
        if sni != wanted:
            named = repr(sni) if sni else "no server name"
            return Refusal("sni_mismatch", f"the TLS ClientHello names {named}, not {wanted!r}")
        return data


async def _answer(stream: Stream, answer: bytes) -> None:
    """Send a refusal, then read what the sandbox still sends (briefly) before closing:
    closing with unread bytes would reset the connection before the answer is read."""
    reader, writer = stream
    try:
        writer.write(answer)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        unread = LINGER_BYTES
        while unread > 0 and (chunk := await asyncio.wait_for(reader.read(65536), LINGER_S)):
            unread -= len(chunk)
    except (OSError, TimeoutError):
        pass  # the sandbox hung up, or sends on: closed either way
