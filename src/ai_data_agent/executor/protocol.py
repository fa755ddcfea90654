"""The controller's side of the runner protocol: job encoding and frame parsing.

Every byte from a container is hostile. `FrameReader` accepts only lines that
start with the run's token, caps line length and the total it will buffer, and
parses frames as strict JSON objects (no pickle, no eval). Lines without the
token (user code writing into the container's stdout) are counted and dropped.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "GO_LINE",
    "RUNNER_STDERR_LIMIT",
    "FrameReader",
    "encode_message",
    "keep_runner_stderr",
    "new_token",
]

MAX_FRAME_BYTES = 4 * 1024 * 1024
RUNNER_STDERR_LIMIT = 64 * 1024  # the runner's own stderr (not the code's), kept for diagnosis
GO_LINE = b"go\n"  # releases a run once the install network is gone
NOISE = "noise"
OVER_LONG = "over-long"


def new_token() -> str:
    return secrets.token_hex(16)


def encode_message(message: dict[str, Any]) -> bytes:
    """Length-prefixed JSON, as `sandbox.channel.read_message` expects."""
    body = json.dumps(message, ensure_ascii=True).encode()
    return str(len(body)).encode() + b"\n" + body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


@dataclass
class FrameReader:
    """Splits a byte stream into frames ``<token> <json-object>\\n``.

    Each byte is looked at once, whatever the stream holds: a line that cannot be
    a frame (it does not start with the token) or that passes the cap is dropped
    as it arrives, up to its end, and never buffered whole.
    """

    token: str
    max_frame_bytes: int = MAX_FRAME_BYTES
    noise_lines: int = 0
    bad_frames: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: str = ""  # the line begun is NOISE or OVER_LONG: dropped up to its end
    _prefix: bytes = field(init=False, repr=False)
    _raw_frame: dict[str, Any] | None = None  # a frame whose raw bytes are arriving
    _raw: bytearray = field(default_factory=bytearray)
    _raw_left: int = 0

    def __post_init__(self) -> None:
        self._prefix = self.token.encode() + b" "

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the complete, valid frames they finish.

        A frame with ``"raw": n`` (a whole number up to the frame cap) is followed by
        exactly ``n`` bytes, not a line: its ``raw`` is those bytes (a checkpoint's, sent
        as they are rather than as base64).
        """
        frames: list[dict[str, Any]] = []
        position = 0
        while True:
            if self._raw_frame is not None:
                position = self._take_raw(data, position, frames)
                if self._raw_frame is not None:
                    return frames
            newline = data.find(b"\n", position)
            if newline < 0:
                break
            frame = self._line(data, position, newline)
            position = newline + 1
            if frame is not None and not self._announces_raw(frame):
                frames.append(frame)
        if not self._skipping and position < len(data):
            self._buffer += memoryview(data)[position:]
            if not self._could_be_frame():
                self._skip(NOISE)
            elif len(self._buffer) > self.max_frame_bytes:
                self._skip(OVER_LONG)  # whoever wrote it
        return frames

    def _announces_raw(self, frame: dict[str, Any]) -> bool:
        size = frame.get("raw")
        if size is None:
            return False
        if type(size) is not int or not 0 <= size <= self.max_frame_bytes:
            frame["raw"] = None  # not a size: the frame will not fit its kind
            return False
        self._raw_frame, self._raw_left = frame, size
        return True

    def _take_raw(self, data: bytes, position: int, frames: list[dict[str, Any]]) -> int:
        """Add what ``data`` holds of the raw bytes being read; the position after them."""
        end = min(position + self._raw_left, len(data))
        self._raw += memoryview(data)[position:end]
        self._raw_left -= end - position
        if not self._raw_left and self._raw_frame is not None:
            self._raw_frame["raw"] = bytes(self._raw)
            frames.append(self._raw_frame)
            self._raw_frame = None
            self._raw.clear()
        return end

    def _could_be_frame(self) -> bool:
        head = bytes(self._buffer[: len(self._prefix)])
        return self._prefix.startswith(head)

    def _skip(self, why: str) -> None:
        """Drop the line begun in the buffer, and what follows of it up to its end."""
        self._buffer.clear()
        self._skipping = why
        if why == OVER_LONG:
            self.bad_frames += 1

    def _line(self, data: bytes, start: int, end: int) -> dict[str, Any] | None:
        """The line that ends at ``data[end]``, begun in the buffer (if any) at ``data[start]``."""
        if self._skipping:
            if self._skipping == NOISE:
                self.noise_lines += 1
            self._skipping = ""
            return None
        if len(self._buffer) + end - start > self.max_frame_bytes:
            self._buffer.clear()
            self.bad_frames += 1
            return None
        if not self._buffer:
            if not data.startswith(self._prefix, start, end):
                self.noise_lines += 1
                return None
            return self._parse(data[start + len(self._prefix) : end])
        self._buffer += memoryview(data)[start:end]
        line = bytes(self._buffer)
        self._buffer.clear()
        if not line.startswith(self._prefix):
            self.noise_lines += 1
            return None
        return self._parse(line[len(self._prefix) :])

    def _parse(self, body: bytes) -> dict[str, Any] | None:
        try:
            frame = json.loads(body, parse_constant=_reject_constant)
        except ValueError:
            self.bad_frames += 1
            return None
        if not isinstance(frame, dict) or not isinstance(frame.get("k"), str):
            self.bad_frames += 1
            return None
        return frame


def keep_runner_stderr(kept: bytearray, data: bytes) -> None:
    """Add to ``kept`` as much of ``data`` as ``RUNNER_STDERR_LIMIT`` leaves room for."""
    kept += data[: max(RUNNER_STDERR_LIMIT - len(kept), 0)]
