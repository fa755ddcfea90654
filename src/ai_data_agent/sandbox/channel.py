"""The runner's side of the wire: messages in on stdin, token-framed lines out on stdout.

stdin carries length-prefixed JSON messages (a decimal byte count, a newline,
the JSON), raw file bytes announced by a message, and the single ``go`` line
that releases a run once the controller has taken the install network away.
stdout carries frames, one per line: ``<token> <json>``. Only the runner holds
the container's stdin and stdout (pid 1 keeps none of them, see `bootstrap`),
and the token is a per-run secret from the job besides, so nothing but the
runner's own lines count as frames::

    channel = Channel(token, sys.stdout.buffer, sys.stdin.buffer)
    channel.phase("running")
    channel.emit({"k": "result", ...})

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import select

from ai_data_agent.sandbox.wirejson import dumps, loads

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import IO, Any

GO_LINE = b"go\n"
GO_WAIT_S = 120.0
READ_CHUNK = 65536
PIPE_SIZE = 1024 * 1024  # what a pipe of the wire holds: a checkpoint's bytes in few steps
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named there only from Python 3.10
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def read_message(stdin: IO[bytes]) -> dict[str, Any]:
    """One length-prefixed JSON object; EOFError at a clean end of input."""
    header = stdin.readline(32)
    if not header:
        raise EOFError("end of input")
    size = int(header.strip())
    if not 0 < size <= MAX_MESSAGE_BYTES:
        raise ValueError(f"message size {size} out of range")
    data = stdin.read(size)
    if len(data) != size:
        raise EOFError(f"message truncated: {len(data)} of {size} bytes")
    message = loads(data)
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def widen_pipe(end: int | IO[bytes]) -> None:
    """Let the pipe ``end`` (an fd or a file) hold `PIPE_SIZE` bytes, when it is a pipe and
    the system lets it (the default, 64 KiB, works, in more steps)."""
    try:
        import fcntl

        fcntl.fcntl(end if isinstance(end, int) else end.fileno(), F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, ValueError):  # not a pipe, not a file, or over the system's cap
        pass


def safe_join(base: str, rel: str) -> str:
    """``base/rel`` for a relative path the controller checked; refused if it could climb."""
    if not rel or rel.startswith("/") or "\x00" in rel or ".." in rel.split("/"):
        raise ValueError(f"unsafe path {rel!r}")
    return os.path.join(base, rel)


def receive_file(stdin: IO[bytes], base: str, rel: str, size: int, mode: int = 0o600) -> str:
    """Write the ``size`` bytes that follow on stdin to ``base/rel``; return the path.

    The file is created exclusively and without following links, so nothing
    outside ``base`` can be touched and nothing existing is overwritten.
    """
    target = safe_join(base, rel)
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, mode), "wb") as fh:
        left = size
        while left:
            chunk = stdin.read(min(left, READ_CHUNK))
            if not chunk:
                raise EOFError(f"input {rel!r} truncated")
            fh.write(chunk)
            left -= len(chunk)
    return target


def receive_files(stdin: IO[bytes], base: str, manifest: list[dict[str, Any]]) -> int:
    """Every file of ``manifest`` (``path``, ``size``), in order; return the bytes written."""
    total = 0
    for entry in manifest:
        size = int(entry["size"])
        receive_file(stdin, base, str(entry["path"]), size)
        total += size
    return total


class Channel:
    """Frames to the controller, and its ``go``."""

    def __init__(self, token: str, out: IO[bytes], stdin: IO[bytes]) -> None:
        self.token = token.encode()
        self.out = out
        self.stdin = stdin

    def emit(self, frame: dict[str, Any]) -> None:
        line = self.token + b" " + dumps(frame).encode() + b"\n"
        self.out.write(line)
        self.out.flush()

    def emit_raw(self, frame: dict[str, Any], data: bytes) -> None:
        """A frame followed by ``data`` as it is (``"raw": len(data)`` tells the reader)."""
        line = dumps(dict(frame, raw=len(data))).encode()
        self.out.write(self.token + b" " + line + b"\n")
        self.out.write(data)
        self.out.flush()

    def log(self, level: str, msg: str) -> None:
        self.emit({"k": "log", "level": level, "msg": msg})

    def phase(self, name: str) -> None:
        self.emit({"k": "phase", "phase": name})

    def wait_for_go(self, timeout_s: float = GO_WAIT_S) -> bool:
        """True once the controller sent ``go`` (the network is gone by then)."""
        ready, _, _ = select.select([self.stdin], [], [], timeout_s)
        return bool(ready) and self.stdin.readline() == GO_LINE


class MessageStream:
    """Length-prefixed messages, and the raw bytes some of them announce, from a
    non-blocking fd, as they arrive (the session runner reads while a cell runs)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False
        os.set_blocking(fd, False)
        widen_pipe(fd)

    def fill(self) -> None:
        """Read what is there now (call when the fd is readable)."""
        try:
            data = os.read(self.fd, PIPE_SIZE)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
        self.buffer += data

    def message(self) -> dict[str, Any] | None:
        """The next whole message, or None until it has arrived.

        Raises:
            ValueError: the bytes are not a message (the controller never sends such).
        """
        newline = self.buffer.find(b"\n", 0, 32)
        if newline < 0:
            if len(self.buffer) >= 32:
                raise ValueError("bad message header")
            return None
        size = int(self.buffer[:newline])
        if not 0 < size <= MAX_MESSAGE_BYTES:
            raise ValueError(f"message size {size} out of range")
        end = newline + 1 + size
        if len(self.buffer) < end:
            return None
        message = loads(bytes(self.buffer[newline + 1 : end]))
        del self.buffer[:end]
        if not isinstance(message, dict):
            raise ValueError("a message must be a JSON object")
        return message

    def read_now(self, limit: int) -> bytes:
        """Up to ``limit`` raw bytes straight from the fd, as many as are there now (b"":
        none yet, or the end): a file's bytes without a round of the caller's loop each."""
        try:
            data = os.read(self.fd, min(limit, PIPE_SIZE))
        except BlockingIOError:
            return b""
        self.eof = self.eof or not data
        return data

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` raw bytes already buffered."""
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return data
