"""The code's interpreter as the runner holds it: started before the code, released once.

    child = CodeProcess.start(env, work, modules=["pandas"])   # returns at once
    report = child.report(60.0)      # {"imported": [...], "error": None, "observed": {...}}
    child.release(main_path, env)    # the code runs now: pump child.proc's output
    child.kill()                     # its whole process group; idempotent

The interpreter (`preload`) starts while the runner does the rest of its work:
in a pooled sandbox before the job arrives (with the set's heavy modules
imported), in a fresh one as soon as the job came. It is a new interpreter
(``python3 -c <bootstrap>``, exec'd by a child of the runner at once: `spawn`),
so nothing of the runner's memory is in it, in its own session; its bundle is
small enough for the pipe, so starting it never waits for it. What it writes
before its release (warnings of an import) is kept, capped, and counts as the
code's output. A session's kernel is made from one
with `kernelproc.KernelProcess.adopt`. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import marshal
import os
import select
import sys
import time

# `_signal`, not `signal`: that one imports `enum`, milliseconds of CPU in every sandbox.
from _signal import SIGKILL  # type: ignore[import-not-found]

from ai_data_agent.sandbox.bootstrap import bundle_of, source_of
from ai_data_agent.sandbox.channel import READ_CHUNK
from ai_data_agent.sandbox.spawn import Child
from ai_data_agent.sandbox.wirejson import loads

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

CONFIG_VARIABLE = "AI_DATA_AGENT_PRELOAD"  # as `preload.CONFIG_VARIABLE`
PRELOAD_MODULES = ("lastvalue", "preload")
MARSHAL_FORMAT = 4  # operations only go to the interpreter, whose python is the runner's
EARLY_OUTPUT_LIMIT = 64 * 1024
MAX_REPORT_BYTES = 1024 * 1024
MAX_PATH_CHARS = 500  # as the controller takes them


class CodeProcess:
    """One code interpreter (see the module docstring)."""

    def __init__(self, proc: Child, ops: int, reports: int, env: dict[str, str]):
        self.proc = proc
        self.ops = ops
        self.reports = reports
        self.env = env  # what it started with
        self.buffer = bytearray()  # of the reports pipe, past the warm report
        self.early: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.warm: dict[str, Any] | None = None
        self.released = False

    @classmethod
    def start(cls, env: Mapping[str, str], cwd: str, modules: list[str]) -> CodeProcess:
        """Start the interpreter with ``env`` in ``cwd``; it imports ``modules`` first."""
        ops_r, ops_w = os.pipe()
        reports_r, reports_w = os.pipe()
        config = " ".join([str(ops_r), str(reports_w), *modules])  # `preload.take_config`
        try:
            proc = Child.spawn(
                [sys.executable, "-c", source_of("bootstrap")],
                dict(env, **{CONFIG_VARIABLE: config}),
                cwd,
                pass_fds=(ops_r, reports_w),
            )
        except BaseException:
            for fd in (ops_r, ops_w, reports_r, reports_w):
                os.close(fd)
            raise
        os.close(ops_r)
        os.close(reports_w)
        try:
            proc.stdin.write(bundle_of("preload", PRELOAD_MODULES))
            proc.stdin.close()
        except OSError:
            pass  # it died at once: its report says so
        return cls(proc, ops_w, reports_r, dict(env))

    def report(self, timeout_s: float) -> dict[str, Any] | None:
        """Its warm report once it is up (waiting up to ``timeout_s``); None if it died,
        did not answer in time or answered nonsense."""
        if self.warm is not None:
            return self.warm
        streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer and len(self.buffer) < MAX_REPORT_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.reports, *streams], [], [], left)
            for fd in ready:
                data = os.read(fd, READ_CHUNK)
                if fd == self.reports:
                    if not data:
                        return None
                    self.buffer += data
                elif data:
                    self._keep_early(streams[fd], data)
                else:
                    del streams[fd]
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        try:
            warm = loads(line)
        except ValueError:
            return None
        if not isinstance(warm, dict) or warm.get("k") != "warm":
            return None
        self.warm = warm
        return warm

    def _keep_early(self, stream: str, data: bytes) -> None:
        kept = self.early[stream]
        self.early[stream] = (kept + data)[:EARLY_OUTPUT_LIMIT]

    @property
    def imported(self) -> list[str]:
        """The modules it imported before the code (none, unless it is a warm one)."""
        warm = self.warm or {}
        return [str(m) for m in warm.get("imported") or []] if not warm.get("error") else []

    def send(self, op: dict[str, Any]) -> None:
        """One operation (`marshal`: the interpreter reads it without importing ``json``).

        Raises:
            OSError: it no longer reads (it died).
        """
        body = marshal.dumps(op, MARSHAL_FORMAT)
        data = str(len(body)).encode() + b"\n" + body
        while data:
            data = data[os.write(self.ops, data) :]

    def changes_to(self, env: Mapping[str, str]) -> dict[str, str | None]:
        """What differs in ``env`` from what it started with (None: unset), for it to apply:
        a job may add environments to those of the pooled sandbox it takes."""
        changes: dict[str, str | None] = {k: v for k, v in env.items() if self.env.get(k) != v}
        changes.update({k: None for k in self.env if k not in env})
        return changes

    def release(
        self,
        main: str,
        env: Mapping[str, str],
        report_to: str | None = None,
        prefixes: list[str] | None = None,
        value_to: str | None = None,
    ) -> None:
        """Run ``main`` as the code, with ``env`` (the changes since its start are sent);
        with ``report_to``, it writes the files it imported under ``prefixes`` there at exit;
        with ``value_to``, its last expression's MIME bundle (`lastvalue`)."""
        op: dict[str, Any] = {"op": "run", "main": main, "env": self.changes_to(env)}
        if value_to is not None:
            op.update(value=value_to, display=source_of("display"))
        if report_to is not None:
            op.update(report=report_to, prefixes=list(prefixes or []))
        self.released = True
        try:
            self.send(op)
        except OSError:
            pass  # it died: the pump sees it exit
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self.ops, self.reports):
            try:
                os.close(fd)
            except OSError:
                pass

    def kill(self) -> None:
        """SIGKILL to its whole process group; reap it; close the pipes. Idempotent."""
        if self.proc.poll() is None:  # once reaped, its pid may be another's
            try:
                os.killpg(self.proc.pid, SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self._close_pipes()
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


def imported_files(path: str, root: str, limit: int = 5000) -> list[str]:
    """The files a released interpreter reported (``release(report_to=path)``) under
    ``root``, relative to it, in the order it imported them; the file is the code's
    (hostile): only relative ``.py`` paths that stay under ``root`` are kept."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            text = fh.read(MAX_REPORT_BYTES).decode("utf-8", "replace")
    except OSError:
        return []
    prefix = root.rstrip("/") + "/"
    found: dict[str, None] = {}  # ordered, without repeats
    for line in text.splitlines():
        rel = line[len(prefix) :] if line.startswith(prefix) else ""
        if rel.endswith(".py") and len(rel) <= MAX_PATH_CHARS and ".." not in rel.split("/"):
            found[rel] = None
        if len(found) >= limit:
            break
    return list(found)
