"""The framed link to one session's runner: operations out, typed frames in, for as long as it lives.

    wire = SessionWire(link)
    wire.send({"op": "cell", "code": "1 + 1", "count": 1, "timeout_s": 60})
    for frame in wire.frames(deadline): ...       # until the caller has its terminal frame
    wire.close()                                  # the container goes

Unlike a run's conversation, a session's stream has no end until the session
does: one thread reads it for the session's life, and its frames wait in a
queue for whichever call is in progress (frames past that call's last one wait
for the next call). A ``sidecar`` (a checkpoint still streaming out while the
next cells run) takes the frames that are its own, and is told the end of the
stream (``None``). Sending is thread-safe, so an interrupt can go out while
another thread reads a cell.
The link reads only frames with the session's token, each parsed into its
type, as for runs; a sandbox that stops answering is `SessionGone`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ai_data_agent.errors import ExecutorError, SessionGone
from ai_data_agent.executor.frames import Frame
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.executor.protocol import encode_message

__all__ = ["SessionWire"]

READ_SLICE_S = 0.25
Sidecar = Callable[[Frame | None], bool]  # True: the frame was its own


class _End:
    """In the queue after the last frame: the stream ended, and why."""

    def __init__(self, why: str) -> None:
        self.why = why


class SessionWire:
    def __init__(self, link: SandboxLink) -> None:
        self.link = link
        self.session_id = link.run_id
        self.ended = False
        self.sidecar: Sidecar | None = None  # takes the frames of work beside the calls
        self._queue: queue.Queue[Frame | _End] = queue.Queue()
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(
            target=self._pump, name=f"wire-{self.session_id[:8]}", daemon=True
        )
        self._reader.start()

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
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._gone("the session's sandbox did not answer in time")
            try:
                item = self._queue.get(timeout=min(left, READ_SLICE_S))
            except queue.Empty:
                continue
            if isinstance(item, _End):
                self._queue.put(item)  # every later call learns it too
                raise self._gone(item.why)
            yield item

    def _pump(self) -> None:
        """The one reader of the stream, for the session's life: frames to the sidecar that
        takes them, else to the calls, in order."""
        why = "the session's sandbox has ended"
        while not self.ended:
            try:
                frames = self.link.read(READ_SLICE_S)
            except ExecutorError as exc:
                why = f"lost the session's output stream ({exc.message})"
                break
            if frames is None:
                why = "the session's sandbox exited"
                break
            for frame in frames:
                sidecar = self.sidecar
                if sidecar is None or not sidecar(frame):
                    self._queue.put(frame)
        self._queue.put(_End(why))
        sidecar = self.sidecar
        if sidecar is not None:
            sidecar(None)

    def close(self) -> None:
        """No more calls; the container is removed (a failure is logged). Idempotent."""
        self.ended = True
        self.link.report_noise()
        self.link.remove()
