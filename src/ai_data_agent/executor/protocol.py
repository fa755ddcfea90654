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
    """Splits a byte stream into frames ``<token> <json-object>\\n``."""

    token: str
    max_frame_bytes: int = MAX_FRAME_BYTES
    noise_lines: int = 0
    bad_frames: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return the complete, valid frames they finish."""
        frames: list[dict[str, Any]] = []
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.max_frame_bytes:
                    # An over-long line: drop it up to its end, whoever wrote it.
                    self._buffer.clear()
                    self._skipping = True
                    self.bad_frames += 1
                return frames
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if self._skipping:
                self._skipping = False
                continue
            if len(line) > self.max_frame_bytes:
                self.bad_frames += 1
                continue
            frame = self._parse(line)
            if frame is not None:
                frames.append(frame)

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        prefix = self.token.encode() + b" "
        if not line.startswith(prefix):
            self.noise_lines += 1
            return None
        try:
            frame = json.loads(line[len(prefix) :], parse_constant=_reject_constant)
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
