"""The framed link to one session's runner: operations out, typed frames in, for as long as it lives.

    wire = SessionWire(link)
    wire.send({"op": "cell", "code": "1 + 1", "count": 1, "timeout_s": 60})
    for frame in wire.frames(deadline): ...       # until the caller has its terminal frame
    wire.close()                                  # the container goes

Unlike a run's conversation, a session's stream has no end until the session
does: frames are read on demand by whichever call is in progress, and frames
read past that call's last one wait for the next call. Sending is
thread-safe, so an interrupt can go out while another thread reads a cell.
The link reads only frames with the session's token, each parsed into its
type, as for runs; a sandbox that stops answering is `SessionGone`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from ai_data_agent.errors import ExecutorError, SessionGone
from ai_data_agent.executor.frames import Frame
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.executor.protocol import encode_message

__all__ = ["SessionWire"]

READ_SLICE_S = 0.25


class SessionWire:
    def __init__(self, link: SandboxLink) -> None:
        self.link = link
        self.session_id = link.run_id
        self.pending: deque[Frame] = deque()
        self.ended = False
        self._send_lock = threading.Lock()

    def _gone(self, why: str) -> SessionGone:
        self.ended = True
        tail = self.link.stderr_tail()
        return SessionGone(f"{why}{': ' + tail if tail else ''}", session_id=self.session_id)

    def send(self, message: dict[str, Any], payload: bytes | Iterable[bytes] = b"") -> None:
        """Send one operation (and the bytes it announces, whole or in chunks as they are read).

        Raises:
            SessionGone: the sandbox no longer takes input.
        """
        if self.ended:
            raise self._gone("the session's sandbox has ended")
        with self._send_lock:
            try:
                if isinstance(payload, bytes):
                    self.link.send(encode_message(message) + payload)
                else:
                    self.link.send(encode_message(message))
                    for chunk in payload:
                        self.link.send(chunk)
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
            frames = self.link.read(timeout_s)
        except ExecutorError as exc:
            raise self._gone(f"lost the session's output stream ({exc.message})") from exc
        if frames is None:
            raise self._gone("the session's sandbox exited")
        self.pending.extend(frames)

    def close(self) -> None:
        """No more calls; the container is removed (a failure is logged). Idempotent."""
        self.ended = True
        self.link.report_noise()
        self.link.remove()
