"""An opened sandbox: its job sent, typed frames in, and its end.

    link = driver.open(spec, job, run_id=run_id, inputs=files)   # from the warm pool, or fresh
    frames = link.read(0.25)    # what the next chunk completes; None at the end of the stream
    link.settled()              # past its start: the warm pool may refill
    link.cpu_used_s()           # CPU seconds since the last reading (the first: since hand-out)
    link.await_exit()           # the stream's end, briefly: the runner exits by itself
    link.remove()               # idempotent; a failure is logged, never raised; egress closed

Runs (`conversation.Conversation`) and sessions (`session.wire.SessionWire`)
read their sandboxes through here. Every byte is hostile: only lines that
carry the job's token count (`protocol.FrameReader`), each parsed into its
type (`frames`); the runner's own stderr is kept, capped, for diagnosis; and
every byte received is counted, so a caller can hold the stream to a budget.
The container's CPU counter is read against a mark: the counter when the
link was made for a pooled sandbox (what its warm-up used is nobody's), 0 for
a fresh one; each reading moves the mark, so a session's cells are charged
one delta each.
"""

from __future__ import annotations

import time

from loguru import logger

from ai_data_agent.egress.proxy import EgressLease
from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import STDERR, STDOUT, Sandbox
from ai_data_agent.executor.frames import Frame, typed_frames
from ai_data_agent.executor.pool import WarmPool
from ai_data_agent.executor.protocol import FrameReader, keep_runner_stderr

__all__ = ["EXIT_WAIT_S", "SandboxLink"]

# How long a runner gets to exit by itself after its result before it is killed.
EXIT_WAIT_S = 1.0


class SandboxLink:
    """A started sandbox whose runner has its job (see the module docstring)."""

    def __init__(
        self,
        sandbox: Sandbox,
        token: str,
        run_id: str,
        pool: WarmPool | None = None,
        egress: EgressLease | None = None,
        cpu_mark_ns: int | None = 0,
    ) -> None:
        self.sandbox = sandbox
        self.egress = egress  # the sandbox's lease on the egress proxy, if it has one
        self.run_id = run_id
        self.reader = FrameReader(token)
        self.runner_stderr = bytearray()
        self.received = 0
        self._pool = pool
        self._cpu_mark_ns = cpu_mark_ns  # None: the counter could not be read at hand-out
        self._log = logger.bind(run_id=run_id)

    def send(self, data: bytes) -> None:
        """Write to the runner's stdin.

        Raises:
            ExecutorError: the sandbox no longer takes input.
        """
        self.sandbox.send(data)

    def read(self, timeout_s: float) -> list[Frame] | None:
        """The frames the next chunk completes (none when nothing came within ``timeout_s``,
        or the chunk was the runner's stderr); None at the end of the stream.

        Raises:
            ExecutorError: the stream broke.
        """
        chunk = self.sandbox.read(timeout_s)
        if chunk is None:
            return []
        stream, data = chunk
        if not data:
            return None
        self.received += len(data)
        if stream == STDERR:
            keep_runner_stderr(self.runner_stderr, data)
        elif stream == STDOUT:
            return typed_frames(self.reader, data)
        return []

    def stderr_tail(self, limit: int = 1000) -> str:
        """The end of the runner's own stderr (its crash, if any), as text."""
        return self.runner_stderr[-limit:].decode("utf-8", "replace").strip()

    def report_noise(self) -> None:
        """Log how many lines the stream carried that were not our frames."""
        if self.reader.noise_lines or self.reader.bad_frames:
            self._log.warning(
                "ignored {} unauthenticated line(s) and {} malformed frame(s) from the sandbox",
                self.reader.noise_lines,
                self.reader.bad_frames,
            )

    def cpu_used_s(self) -> float | None:
        """CPU seconds the container used since the last reading (the first: since the
        link was made), and move the mark; None when the counter cannot be read (the
        mark stays, so the next reading charges this one's share too)."""
        now = self.sandbox.cpu_ns()
        if now is None or self._cpu_mark_ns is None:
            self._cpu_mark_ns = self._cpu_mark_ns if now is None else now
            return None
        used, self._cpu_mark_ns = max(now - self._cpu_mark_ns, 0), now
        return used / 1e9

    def settled(self) -> None:
        """Past its start: the warm pool need not wait for it to refill (`WarmPool.settled`)."""
        if self._pool is not None:
            self._pool.settled(self.sandbox)

    def close_egress(self) -> None:
        """Close the sandbox's egress lease, if any: every tunnel ends. Idempotent; a
        failure is logged, never raised."""
        if self.egress is None:
            return
        try:
            self.egress.close()
        except Exception as exc:  # a proxy that does not answer in time, or has stopped
            self._log.warning("closing the sandbox's egress failed: {}", exc)

    def await_exit(self, timeout_s: float = EXIT_WAIT_S) -> None:
        """Read to the end of the stream, for up to ``timeout_s``: the runner exits after
        its result (a held one once its stdin closes). Removing a container that stopped
        costs the engine less than killing a running one. Never raises."""
        end = time.monotonic() + timeout_s
        try:
            while (left := end - time.monotonic()) > 0:
                chunk = self.sandbox.read(left)
                if chunk is not None and not chunk[1]:
                    return
        except ExecutorError:
            pass  # the stream broke: the removal kills what is left

    def finish(self) -> None:
        """`await_exit`, then `remove`: a deferred removal's whole work."""
        self.await_exit()
        self.remove()

    def remove(self) -> None:
        """Remove the container, then close its egress lease; a failure is logged (the
        retries and the sweep find it by label), never raised over the error that may be
        on its way."""
        try:
            self.sandbox.remove()
        except ExecutorError as exc:
            self._log.warning("cleanup failed: {}", exc)
        finally:
            self.close_egress()
