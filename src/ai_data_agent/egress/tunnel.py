"""Bytes both ways between a sandbox's connection and its destination, within the sandbox's caps.

    outcome = await Tunnel(budget, idle_timeout_s=60).run(sandbox_side, upstream, first=b"...")
    tunnel.bytes_out, tunnel.bytes_in

Each direction copies until its end of file and then half-closes the other
side, so request-response protocols finish; the tunnel ends when both
directions have, when a byte cap of the sandbox is crossed (``capped``: the
connection that crossed it ends, the run goes on), or when neither direction
carried a byte for the idle timeout (``idle``). The bytes that would cross a
cap are not sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from ai_data_agent.egress.policy import Budget, Direction

__all__ = ["Stream", "Tunnel", "close_writer"]

CHUNK = 64 * 1024
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Ending = Literal["allowed", "capped", "idle"]


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a connection without waiting on a peer that does not answer."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 1.0)
    except (OSError, TimeoutError):
        pass  # gone already, or a peer that does not answer: closed on our side either way


class Tunnel:
    def __init__(self, budget: Budget, *, idle_timeout_s: float) -> None:
        self.budget = budget
        self.idle_timeout_s = idle_timeout_s
        self.bytes_out = 0
        self.bytes_in = 0
        self._last = time.monotonic()
        self._ending: Ending | None = None  # set by a copy that ends the whole tunnel

    async def run(self, sandbox: Stream, upstream: Stream, *, first: bytes = b"") -> Ending:
        """Copy until both directions end, or a cap or the idle timeout ends the tunnel.
        ``first`` is sent upstream before anything else (counted as out)."""
        if first:
            if not self._count("out", len(first)):
                return "capped"
            upstream[1].write(first)
        copies = {
            asyncio.ensure_future(self._copy(sandbox[0], upstream[1], "out")),
            asyncio.ensure_future(self._copy(upstream[0], sandbox[1], "in")),
        }
        try:
            pending = copies
            while pending and self._ending is None:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for copy in copies:
                copy.cancel()
            await asyncio.gather(*copies, return_exceptions=True)
        return self._ending or "allowed"

    def _count(self, direction: Direction, size: int) -> bool:
        """Count bytes about to pass; False (the tunnel ends, ``capped``) past a cap."""
        if not self.budget.take(direction, size):
            self._ending = "capped"
            return False
        if direction == "out":
            self.bytes_out += size
        else:
            self.bytes_in += size
        self._last = time.monotonic()
        return True

    async def _copy(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: Direction
    ) -> None:
        while True:
            try:
                data = await asyncio.wait_for(reader.read(CHUNK), self.idle_timeout_s)
            except TimeoutError:
                if time.monotonic() - self._last >= self.idle_timeout_s:
                    self._ending = "idle"
                    return
                continue  # the other direction is busy
            except OSError:
                data = b""  # reset by the peer: this direction is over
            if not data:
                if writer.can_write_eof():
                    try:
                        writer.write_eof()
                    except OSError:
                        pass  # the other side is gone too
                return
            if not self._count(direction, len(data)):
                return
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return
