"""The session kernel as the runner sees it: a child interpreter, its pipes, its end.

    kernel = KernelProcess.start(env, work, config, bundle)   # waits for "ready"
    kernel = KernelProcess.adopt(child, config, env)          # from a started `codeproc`
    kernel.send({"op": "cell", "code": "1 + 1", "count": 1})
    for message in kernel.messages(): ...                     # display, done, env
    kernel.interrupt(); kernel.kill()

The kernel is a new interpreter (``python3 -c <bootstrap>``, exec'd by a
child of the runner at once: `spawn`), so it holds nothing of the runner's
memory (the frame token); it runs
in its own process group, so a kill takes whatever the code started too.
Whatever it writes is hostile: lines are capped and must be JSON objects.
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from ai_data_agent.sandbox.bootstrap import PACKAGE, bundle_of, code_of, source_of
from ai_data_agent.sandbox.channel import READ_CHUNK
from ai_data_agent.sandbox.spawn import Child

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from ai_data_agent.sandbox.codeproc import CodeProcess

KERNEL_MODULES = ("channel", "display", "kernel", "snapshot", "wirejson")
READY_WAIT_S = 60.0
MAX_LINE_BYTES = 16 * 1024 * 1024


# The kernel exited, or never became ready (a builtin: the sandbox has no error tree of its own).
KernelGone = ChildProcessError


class KernelProcess:
    def __init__(self, proc: Child, commands: int, messages: int) -> None:
        self.proc = proc
        self.commands = commands
        self.messages_fd = messages
        self.buffer = bytearray()
        self.skipping = False
        self.dropped = 0
        os.set_blocking(messages, False)
        self.stdout = proc.stdout.fileno()
        self.stderr = proc.stderr.fileno()
        os.set_blocking(self.stdout, False)
        os.set_blocking(self.stderr, False)

    @classmethod
    def start(
        cls, env: Mapping[str, str], cwd: str, config: dict[str, Any], bundle: bytes, boot: str
    ) -> KernelProcess:
        """Start a kernel and wait until it is ready for cells.

        Raises:
            KernelGone: it exited or did not get ready in time (its stderr says why).
        """
        command_r, command_w = os.pipe()
        message_r, message_w = os.pipe()
        passed = dict(config, **{"in": command_r, "out": message_w})
        try:
            proc = Child.spawn(
                [sys.executable, "-c", boot],
                dict(env, AI_DATA_AGENT_KERNEL=json.dumps(passed)),
                cwd,
                pass_fds=(command_r, message_w),
            )
        except BaseException:
            for fd in (command_r, command_w, message_r, message_w):
                os.close(fd)
            raise
        os.close(command_r)
        os.close(message_w)
        kernel = cls(proc, command_w, message_r)
        try:
            proc.stdin.write(bundle)
            proc.stdin.close()
        except OSError:
            pass  # it died at once; the wait below says so
        kernel.wait_ready()
        return kernel

    @classmethod
    def adopt(
        cls,
        child: CodeProcess,
        config: dict[str, Any],
        env: Mapping[str, str],
    ) -> KernelProcess:
        """The kernel made from a started code interpreter (`codeproc`, a warm one that
        may have imported the session's modules): it becomes the kernel on its two pipes,
        with ``env`` (the session's environments join its ``sys.path``), from the kernel's
        modules that the operation carries (compiled, when the bundle brought code for
        this interpreter: the same Python as the runner's).

        Raises:
            KernelGone: it exited or did not get ready in time.
        """
        names = {f"{PACKAGE}.{m}": m for m in KERNEL_MODULES}
        op = {
            "op": "kernel",
            "config": config,
            "sources": {name: source_of(m) for name, m in names.items()},
            "code": {name: c for name, m in names.items() if (c := code_of(m)) is not None},
            "env": child.changes_to(env),
        }
        try:
            child.send(op)
        except OSError:
            pass  # it died: the wait below says so
        kernel = cls(child.proc, child.ops, child.reports)
        kernel.buffer += child.buffer
        kernel.wait_ready()
        return kernel

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline:
            for message in self.read_messages(timeout_s=0.1):
                if message.get("k") == "ready":
                    return
            if self.proc.poll() is not None:
                break
        self.kill()
        raise KernelGone(f"the kernel did not start: {self.stderr_text()}")

    def stderr_text(self) -> str:
        try:
            return os.read(self.stderr, 4000).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def send(self, message: dict[str, Any]) -> None:
        """One length-prefixed message to the kernel.

        Raises:
            KernelGone: the kernel no longer reads (it died).
        """
        body = json.dumps(message, ensure_ascii=True).encode()
        data = str(len(body)).encode() + b"\n" + body
        try:
            while data:
                written = os.write(self.commands, data)
                data = data[written:]
        except OSError as exc:
            raise KernelGone(f"the kernel stopped reading: {exc}") from exc

    def read_messages(self, timeout_s: float = 0.0) -> list[dict[str, Any]]:
        """The whole JSON-object lines that are there (waiting up to ``timeout_s`` for some)."""
        if timeout_s > 0:
            import select

            select.select([self.messages_fd], [], [], timeout_s)
        try:
            data = os.read(self.messages_fd, READ_CHUNK)
        except BlockingIOError:
            data = None
        if data == b"":
            raise KernelGone("the kernel closed its message pipe")
        if data:
            self.buffer += data
        return self._lines()

    def _lines(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            newline = self.buffer.find(b"\n")
            if newline < 0:
                if len(self.buffer) > MAX_LINE_BYTES:
                    self.buffer.clear()
                    self.skipping = True
                    self.dropped += 1
                return found
            line = bytes(self.buffer[:newline])
            del self.buffer[: newline + 1]
            if self.skipping:
                self.skipping = False
                continue
            try:
                message = json.loads(line)
            except ValueError:
                self.dropped += 1
                continue
            if isinstance(message, dict) and isinstance(message.get("k"), str):
                found.append(message)
            else:
                self.dropped += 1

    def interrupt(self) -> None:
        """SIGINT to the kernel itself (as Jupyter does), not to what the code started."""
        try:
            os.kill(self.proc.pid, signal.SIGINT)
        except OSError:
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_signal(self) -> int | None:
        code = self.proc.poll()
        return -code if code is not None and code < 0 else None

    def kill(self) -> None:
        """SIGKILL to the kernel's whole process group; reap it; close the pipes."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        for fd in (self.commands, self.messages_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        for pipe in (self.proc.stdout, self.proc.stderr):
            pipe.close()


def open_kernel(
    env: Mapping[str, str], cwd: str, config: dict[str, Any], child: CodeProcess | None = None
) -> KernelProcess:
    """A kernel ready for cells: made from ``child`` (a started code interpreter) when there
    is one and it takes the role, else started afresh.

    Raises:
        KernelGone: no kernel could start.
    """
    if child is not None:
        try:
            return KernelProcess.adopt(child, config, env)
        except KernelGone:
            pass  # killed by now: a fresh one, as if there had been none
    bundle = bundle_of("kernel", KERNEL_MODULES)
    return KernelProcess.start(env, cwd, config, bundle, source_of("bootstrap"))


def checked_output(message: dict[str, Any], max_bytes: int) -> dict[str, Any] | None:
    """A display output from the kernel, as the controller gets it: a bundle of strings
    (JSON values for JSON types) within the cap, else None."""
    data = message.get("data")
    metadata = message.get("metadata")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        return None
    output = {
        "data": data,
        "metadata": metadata if isinstance(metadata, dict) else {},
        "truncated": bool(message.get("truncated")),
    }
    if len(json.dumps(output, default=str)) > max_bytes:
        return None
    return output


def checked_error(error: Any) -> dict[str, Any] | None:
    if not isinstance(error, dict):
        return None
    lines = error.get("traceback")
    return {
        "ename": str(error.get("ename", ""))[:200],
        "evalue": str(error.get("evalue", ""))[:2000],
        "traceback": [str(line)[:20000] for line in lines][:200] if isinstance(lines, list) else [],
    }
