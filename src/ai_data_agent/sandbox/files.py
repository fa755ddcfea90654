"""A session's files under ``work/``: upload (``put``), download (``get``) and listing (``ls``).

    upload = operation(channel, space, {"op": "put", "path": "data/a.csv", "size": 12}, ack)
    while upload is not None:
        upload = upload.feed(incoming, ack)     # as the bytes arrive

Paths are relative to ``work/`` and were checked by the controller; here they
are joined without ever following a link (no parent may be a symlink, the
file is written under a temporary name and renamed over the target), so an
upload replaces a file and never writes through a link the code made.
Downloads go as artifact frames (the controller checks size and sha256).
An operation that fails says so naming the user's path and the reason
(``outputs is a directory``), never a path of the sandbox dir or of an upload
in progress. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import stat

from ai_data_agent.sandbox.channel import Channel, MessageStream, safe_join
from ai_data_agent.sandbox.outputs import send_file

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Ack = Callable[..., None]

MAX_LISTED = 1000


def file_error(rel: str, exc: Exception) -> str:
    """Why ``rel`` could not be written or read, in the user's terms."""
    if isinstance(exc, IsADirectoryError):
        return f"{rel} is a directory"
    if isinstance(exc, NotADirectoryError):
        return f"a parent of {rel} is not a directory"
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return f"{rel}: {reason[:1].lower()}{reason[1:]}"
    if isinstance(exc, KeyError):
        return f"the operation has no {exc}"
    return str(exc)  # ours: it names the user's path already


def _check_parents(base: str, rel: str) -> str:
    """``base/rel`` with every existing parent a real directory (not a link); created if missing."""
    target = safe_join(base, rel)
    current = base
    for part in rel.split("/")[:-1]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o700)
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{os.path.relpath(current, base)} is not a directory")
    return target


class Upload:
    """A ``put`` whose bytes are still arriving: written to a temporary file, renamed at the end.

    A failure (a bad path, a full disk) does not stop the reading: the rest of the
    announced bytes are consumed, so the next message is read where it starts.
    """

    def __init__(self, path: str, work: str, size: int, op: str = "put") -> None:
        self.path = path
        self.op = op
        self.left = size
        self.size = size
        self.target = ""
        self.temp = ""
        self.fd: int | None = None
        self.error: str | None = None
        try:
            self.target = _check_parents(work, path)
            self.temp = os.path.join(os.path.dirname(self.target), f".upload-{os.urandom(6).hex()}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            self.fd = os.open(self.temp, flags, 0o600)
        except (OSError, ValueError) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.error = file_error(self.path, exc)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp:
            try:
                os.unlink(self.temp)
            except OSError:
                pass

    def feed(self, incoming: MessageStream, ack: Ack) -> Upload | None:
        """Write what has arrived; None once every byte is in (and acknowledged)."""
        while self.left:
            chunk = incoming.take(self.left) or incoming.read_now(self.left)
            if not chunk:
                return self
            self.left -= len(chunk)
            if self.fd is not None:
                try:
                    os.write(self.fd, chunk)
                except OSError as exc:
                    self._fail(exc)
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                os.replace(self.temp, self.target)
            except OSError as exc:
                self._fail(exc)
        if self.error is None:
            ack(self.op, path=self.path, size=self.size)
        else:
            ack(self.op, ok=False, path=self.path, error=self.error)
        return None


def listing(work: str) -> dict[str, Any]:
    """Regular files under ``work`` (links not followed): path, size, modified time."""
    found: list[dict[str, Any]] = []
    truncated = False
    for root, dirs, names in os.walk(work, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if len(found) >= MAX_LISTED:
                truncated = True
                break
            rel = os.path.relpath(path, work).replace(os.sep, "/")
            found.append({"path": rel, "size": st.st_size, "modified": st.st_mtime})
    return {"files": found, "truncated": truncated}


def download(channel: Channel, work: str, rel: str, max_bytes: int) -> str | None:
    """Send ``work/rel`` as artifact frames; the reason it was not sent, or None."""
    path = safe_join(work, rel)
    try:
        st = os.lstat(path)
    except OSError:
        return "no such file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size > max_bytes:
        return f"larger than {max_bytes} bytes"
    return send_file(channel, rel, path, st.st_size)


def operation(channel: Channel, space: Any, message: dict[str, Any], ack: Ack) -> Upload | None:
    """Serve ``put``, ``get`` or ``ls``; an `Upload` when a put's bytes are still to come."""
    op = str(message.get("op"))
    rel = str(message.get("path", ""))
    try:
        if op == "put":
            return Upload(rel, space.work, max(int(message["size"]), 0))
        if op == "get":
            reason = download(channel, space.work, rel, int(message.get("max_bytes", 0)))
            if reason is None:
                ack("get", path=rel)
            else:
                ack("get", ok=False, path=rel, error=reason)
        elif op == "ls":
            ack("ls", **listing(space.work))
        else:
            ack(op, ok=False, error=f"unknown operation {op!r}")
    except (OSError, ValueError, KeyError) as exc:
        ack(op, ok=False, path=rel, error=file_error(rel, exc))
    return None
