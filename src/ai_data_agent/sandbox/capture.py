"""One checkpoint in flight, in the runner: the files sent, the namespace relayed from its FIFO.

    job = Checkpoint(owner, {"op": "checkpoint", "seq": 4, "base": 3, "max_bytes": n, ...})
    kernel.send(job.kernel_message()); job.capture()   # files, then the ack
    job.started(reply)        # the kernel forked its writer (see `snapshot`)
    job.relay()               # the FIFO is readable: its bytes go out as frames
    job.tick(now)             # past its deadline: the writer is killed

``owner`` is the session loop's `checkpoint.Checkpoints`. The frames:
``ckpt_begin`` (a file's path, or ``""`` for the namespace), ``ckpt_data``
(followed by its bytes as they are: `Channel.emit_raw`), ``ckpt_end``;
``ckpt_same`` for a file unchanged since the checkpoint ``base`` this runner
sent; ``ckpt_done`` last (kept and lost names, files skipped, or the error).
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time

from ai_data_agent.sandbox.channel import Channel

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

PRIVATE_DIR = ".checkpoint"  # in the sandbox dir, beside work/: never archived
CHUNK = 1024 * 1024  # raw bytes per frame, within the controller's frame cap
MAX_FILES = 10_000
MAX_REPORT_BYTES = 1024 * 1024
MAX_SKIPPED = 100


def private_dir(sandbox: str) -> str:
    path = os.path.join(sandbox, PRIVATE_DIR)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def file_signature(st: os.stat_result) -> list[int]:
    return [st.st_mtime_ns, st.st_size, st.st_ino]


class Checkpoint:
    """One checkpoint in flight (see the module docstring)."""

    def __init__(self, owner: Any, message: dict[str, Any]) -> None:
        self.owner = owner
        loop = owner.loop
        self.loop = loop
        self.channel: Channel = loop.channel
        self.seq = int(message.get("seq", 0))
        self.base = message.get("base")
        self.max_bytes = int(message.get("max_bytes", 0))
        self.deadline = time.monotonic() + float(message.get("timeout_s", 60))
        where = private_dir(loop.space.sandbox)
        self.fifo = os.path.join(where, f"snapshot-{self.seq}")
        self.report = self.fifo + ".json"
        self.progress = self.fifo + ".name"
        self.pid: int | None = None
        self.fd: int | None = None
        self.sent = 0
        self.done = False
        self.captured = False  # the namespace forked and the files sent: acknowledged
        self.skipped: list[dict[str, str]] = []
        for stale in (self.fifo, self.report, self.progress):
            if os.path.lexists(stale):
                os.unlink(stale)
        os.mkfifo(self.fifo, 0o600)
        self.fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)

    def kernel_message(self) -> dict[str, Any]:
        return {
            "op": "snapshot",
            "fifo": self.fifo,
            "report": self.report,
            "progress": self.progress,
            "serialiser": self.owner.serialiser,
        }

    @property
    def relaying(self) -> bool:
        """The child runs: its FIFO is to be read."""
        return self.pid is not None and self.fd is not None and not self.done

    def capture(self) -> None:
        """The kernel has the order to fork, before any later cell: the files go now, and
        the ack; the namespace follows as the child writes it, while the next cells run."""
        skipped = self._send_files()
        if skipped is None:
            return
        self.skipped = skipped[:MAX_SKIPPED]
        self.channel.emit({"k": "ckpt_begin", "path": ""})
        self.captured = True
        self.loop._ack("checkpoint")

    def started(self, message: dict[str, Any]) -> None:
        """The kernel's answer: the child's pid, or why there is none."""
        pid = message.get("pid")
        if not isinstance(pid, int) or pid <= 0:
            self.fail(f"the kernel could not start the checkpoint: {message.get('error')}")
            return
        self.pid = pid

    def relay(self) -> None:
        """Forward what the FIFO holds now; at its end, the files and the report."""
        assert self.fd is not None
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(f"cannot read the namespace: {exc.strerror}")
            return
        if not data:
            self._namespace_written()
            return
        self.sent += len(data)
        if self.max_bytes and self.sent > self.max_bytes:
            self.fail(f"the checkpoint is larger than {self.max_bytes} bytes")
            return
        self.channel.emit_raw({"k": "ckpt_data"}, data)

    def _namespace_written(self) -> None:
        self._close_fifo()
        self.channel.emit({"k": "ckpt_end"})
        report = self._child_report()
        if report is not None:
            self._finish(dict(report, skipped=self.skipped))

    def _child_report(self) -> dict[str, Any] | None:
        try:
            with open(self.report, "rb") as fh:
                report = json.loads(fh.read(MAX_REPORT_BYTES))
        except (OSError, ValueError):
            self.fail("the serialiser ended without finishing (it crashed or was killed)")
            return None
        if not isinstance(report, dict):
            self.fail("the serialiser's report is malformed")
            return None
        return {
            "modules": [str(n)[:200] for n in report.get("modules") or []][:100],
            "kept": [str(n)[:200] for n in report.get("kept") or []],
            "lost": [
                {
                    "name": str(e.get("name"))[:200],
                    "type": str(e.get("type"))[:200],
                    "reason": str(e.get("reason"))[:300],
                }
                for e in report.get("lost") or []
                if isinstance(e, dict)
            ],
        }

    def _send_files(self) -> list[dict[str, str]] | None:
        """Every regular file under ``work/`` (links and devices skipped); None on failure."""
        work = self.loop.space.work
        owner = self.owner
        previous = owner.file_signatures if owner.signatures_seq == self.base else {}
        now: dict[str, list[int]] = {}
        skipped: list[dict[str, str]] = []
        for rel, path, st in _walk(work, skipped):
            signature = file_signature(st)
            if previous.get(rel) == signature:
                self.channel.emit({"k": "ckpt_same", "path": rel})
                now[rel] = signature
                continue
            if self.max_bytes and self.sent + st.st_size > self.max_bytes:
                self.fail(f"the checkpoint is larger than {self.max_bytes} bytes")
                return None
            reason = self._send_file(rel, path, st.st_size)
            if reason is None:
                now[rel] = signature
            else:
                skipped.append({"path": rel, "reason": reason})
        owner.file_signatures, owner.signatures_seq = now, self.seq
        return skipped

    def _send_file(self, rel: str, path: str, size: int) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError as exc:
            return f"cannot open: {exc.strerror}"
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return "not a regular file"
            self.channel.emit({"k": "ckpt_begin", "path": rel})
            left = size
            while left:  # never more than the size scanned: files may grow
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                left -= len(chunk)
                self.sent += len(chunk)
                self.channel.emit_raw({"k": "ckpt_data"}, chunk)
            self.channel.emit({"k": "ckpt_end"})
        return None

    def _finish(self, fields: dict[str, Any]) -> None:
        self.done = True
        self._cleanup()
        self.channel.emit(dict(fields, k="ckpt_done", seq=self.seq, bytes=self.sent))
        self.owner.ended(self, acknowledge=not self.captured)

    def tick(self, now: float) -> None:
        if not self.done and now >= self.deadline:
            name = ""
            try:
                with open(self.progress) as fh:
                    name = fh.read(200)
            except OSError:
                pass
            where = f" (while writing {name})" if name else ""
            self.fail(f"the serialiser did not finish in time{where}")

    def fail(self, reason: str) -> None:
        if self.done:
            return
        self._finish({"error": reason})

    def _close_fifo(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _cleanup(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # gone already, or stopped now
            except OSError:
                pass
        self._close_fifo()
        for path in (self.fifo, self.report, self.progress):
            try:
                os.unlink(path)
            except OSError:
                pass


def _walk(work: str, skipped: list[dict[str, str]]) -> list[tuple[str, str, os.stat_result]]:
    """(relative path, path, stat) of the regular files under ``work``, links not followed."""
    found: list[tuple[str, str, os.stat_result]] = []
    for root, dirs, names in os.walk(work, followlinks=False):
        dirs.sort()
        for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, work).replace(os.sep, "/")
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
                skipped.append({"path": rel, "reason": kind})
            elif len(found) >= MAX_FILES:
                skipped.append({"path": rel, "reason": f"more than {MAX_FILES} files"})
            else:
                found.append((rel, path, st))
    return found
