"""Running the user's code: a child interpreter, its output pumped as capped frames.

    report = execute(channel, job, work, child, release)   # exit code, signal, caps, value

The code runs in its own interpreter (`codeproc`: started before the code, it
then runs ``main.py`` as ``python main.py`` would, keeping the value of a last
expression: `lastvalue`) in its own session (so the whole process group can be
killed), with the env install and verify used, stdin /dev/null and
stdout/stderr read here: decoded incrementally, cut at the job's caps and sent
as ``out`` frames while it runs. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import codecs
import os
import select
import time
from _signal import SIGKILL  # type: ignore[import-not-found]  # `signal` imports `enum`

from ai_data_agent.sandbox.channel import READ_CHUNK, Channel
from ai_data_agent.sandbox.lastvalue import MAIN_FILE, read_value

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from ai_data_agent.sandbox.codeproc import CodeProcess
    from ai_data_agent.sandbox.spawn import Child

    Emit = Callable[[dict[str, Any]], None]

VALUE_FILE = "value.json"  # in the sandbox dir, beside work/ (the code's cwd)
# After the main process exits, a background child may still hold the pipes
# open; read what is already there, briefly, then stop.
DRAIN_AFTER_EXIT_S = 0.2
STREAMS = ("stdout", "stderr")


def kill_group(proc: Child) -> None:
    try:
        os.killpg(proc.pid, SIGKILL)
    except OSError:
        pass


class OutputPump:
    """Reads a child's stdout/stderr, forwards capped text as frames, enforces a deadline."""

    def __init__(self, emit: Emit, limits: Mapping[str, int], kill_on_cap: bool) -> None:
        self.emit = emit
        self.limits = dict(limits)
        self.kill_on_cap = kill_on_cap
        self.seen = dict.fromkeys(STREAMS, 0)
        self.truncated = dict.fromkeys(STREAMS, False)
        self.decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in STREAMS
        }
        self.output_exceeded = False

    def feed(self, stream: str, data: bytes, final: bool = False) -> None:
        room = self.limits[stream] - self.seen[stream]
        if len(data) > room:
            data = data[: max(room, 0)]
            self.truncated[stream] = True
        self.seen[stream] += len(data)
        text = self.decoders[stream].decode(data, final)
        if text:
            self.emit({"k": "out", "s": stream, "d": text})

    def _read_ready(self, poller: select.poll, open_fds: dict[int, str], wait: float) -> bool:
        """Forward what is readable within ``wait``; True when the output cap says stop."""
        for fd, _ in poller.poll(max(wait, 0.0) * 1000):
            name = open_fds[fd]
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                continue
            if not data:
                poller.unregister(fd)
                del open_fds[fd]
                continue
            self.feed(name, data)
            if self.truncated[name] and self.kill_on_cap and not self.output_exceeded:
                self.output_exceeded = True
                return True
        return False

    def run(self, proc: Child, timeout_s: float) -> dict[str, Any]:
        """Pump until the process exits (or times out); return what happened."""
        deadline = time.monotonic() + timeout_s
        open_fds = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        poller = select.poll()
        for fd in open_fds:
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
        timed_out = False
        exited_at: float | None = None
        while open_fds:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT_S:
                break
            if exited_at is None and now >= deadline:
                timed_out = True
                kill_group(proc)
                exited_at = time.monotonic()
                continue
            wait = min(deadline - now, 0.05 if exited_at is not None else 0.5)
            if self._read_ready(poller, open_fds, wait):
                kill_group(proc)
        if exited_at is None:
            # Both pipes closed (the code may have pointed its fds elsewhere)
            # while the process runs on: wait for it, up to the deadline.
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0))
            except TimeoutError:
                timed_out = True
        for name in STREAMS:
            self.feed(name, b"", final=True)
        kill_group(proc)  # whatever the main process left behind in its group
        code = proc.wait()
        return {
            "exit_code": code if code >= 0 else None,
            "signal": -code if code < 0 else None,
            "timed_out": timed_out,
            "output_exceeded": self.output_exceeded,
            "stdout_truncated": self.truncated["stdout"],
            "stderr_truncated": self.truncated["stderr"],
        }


def execute(
    channel: Channel,
    job: Mapping[str, Any],
    work: str,
    child: CodeProcess,
    release: Callable[[str, str], None],
) -> dict[str, Any]:
    """Write the code to ``work/main.py``, have ``release`` start it in ``child`` (the
    code's interpreter, `codeproc`; its last expression's bundle goes to the file named
    second), pump its output; report how it ended (with ``value``, that bundle, when
    there is one)."""
    path = os.path.join(work, MAIN_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(job["code"])
    limits = {"stdout": int(job["stdout_limit"]), "stderr": int(job["stderr_limit"])}
    pump = OutputPump(channel.emit, limits, kill_on_cap=job.get("output_policy") == "kill")
    for stream, data in child.early.items():  # written before the code: its output too
        if data:
            pump.feed(stream, data)
    channel.phase("running")
    started = time.monotonic()
    value_path = os.path.join(os.path.dirname(work), VALUE_FILE)
    release(path, value_path)
    report = pump.run(child.proc, float(job["timeout_s"]))
    report["duration_s"] = time.monotonic() - started
    value = read_value(value_path)
    if value is not None:
        report["value"] = value
    return report
