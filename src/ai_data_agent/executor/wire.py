"""The framed link to one session's runner: operations out, typed frames in, for as long as it lives.

    wire = SessionWire(sandbox, token, session_id)
    wire.send({"op": "cell", "code": "1 + 1", "count": 1, "timeout_s": 60})
    for frame in wire.frames(deadline): ...       # until the caller has its terminal frame

Unlike a run's conversation, a session's stream has no end until the session
does: frames are read on demand by whichever call is in progress, and frames
read past that call's last one wait for the next call. Sending is
thread-safe, so an interrupt can go out while another thread reads a cell.
Every byte is hostile, as for runs: only frames with the session's token
count, each parsed into its type.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from loguru import logger

from ai_data_agent.errors import ExecutorError, SessionGone
from ai_data_agent.executor.backend import STDERR, STDOUT, Sandbox
from ai_data_agent.executor.frames import Frame, typed_frames
from ai_data_agent.executor.protocol import FrameReader, encode_message, keep_runner_stderr

__all__ = ["SessionWire"]

READ_SLICE_S = 0.25


class SessionWire:
    def __init__(self, sandbox: Sandbox, token: str, session_id: str) -> None:
        self.sandbox = sandbox
        self.session_id = session_id
        self.reader = FrameReader(token)
        self.pending: deque[Frame] = deque()
        self.runner_stderr = bytearray()
        self.ended = False
        self._send_lock = threading.Lock()
        self._log = logger.bind(run_id=session_id)

    def _gone(self, why: str) -> SessionGone:
        self.ended = True
        tail = self.runner_stderr[-1000:].decode("utf-8", "replace").strip()
        return SessionGone(f"{why}{': ' + tail if tail else ''}", session_id=self.session_id)

    def send(self, message: dict[str, Any], payload: bytes = b"") -> None:
        """Send one operation (and the bytes it announces).

        Raises:
            SessionGone: the sandbox no longer takes input.
        """
        if self.ended:
            raise self._gone("the session's sandbox has ended")
        with self._send_lock:
            try:
                self.sandbox.send(encode_message(message) + payload)
            except ExecutorError as exc:
                raise self._gone(f"cannot write to the session's sandbox ({exc.message})") from exc

    def frames(self, deadline: float) -> Iterator[Frame]:
        """Frames as they come, until the caller stops or ``deadline`` (monotonic) passes.

        Raises:
            SessionGone: the sandbox ended, or said nothing in time (it is then lost).
        """
        while True:
            while self.pending:
                yield self.pending.popleft()
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._gone("the session's sandbox did not answer in time")
            self._read(min(left, READ_SLICE_S))

    def _read(self, timeout_s: float) -> None:
        if self.ended:
            raise self._gone("the session's sandbox has ended")
        try:
            chunk = self.sandbox.read(timeout_s)
        except ExecutorError as exc:
            raise self._gone(f"lost the session's output stream ({exc.message})") from exc
        if chunk is None:
            return
        stream, data = chunk
        if not data:
            raise self._gone("the session's sandbox exited")
        if stream == STDERR:
            keep_runner_stderr(self.runner_stderr, data)
        elif stream == STDOUT:
            self.pending.extend(typed_frames(self.reader, data))

    def report_noise(self) -> None:
        if self.reader.noise_lines or self.reader.bad_frames:
            self._log.warning(
                "ignored {} unauthenticated line(s) and {} malformed frame(s) from the session",
                self.reader.noise_lines,
                self.reader.bad_frames,
            )
