"""The runner's session mode: one kernel in this container, cells relayed under the runner's deadlines.

After the usual sandbox dir and input files, the runner starts the kernel
(`kernelproc`) and serves the controller's operations, read from stdin as
they come (`channel.MessageStream`):

* ``cell``: run code; the code's output is forwarded as ``out`` frames, rich
  outputs as ``display`` frames, files it wrote under ``outputs/`` as artifact
  frames, then one ``cell`` frame. At the cell's timeout the kernel gets SIGINT;
  if the code does not stop within the grace period the kernel (and everything
  it started) is killed and a fresh one starts: the cell says ``state: lost``
  and the ``generation`` goes up. The same when the kernel dies (``os._exit``,
  a segfault, the memory limit);
* ``interrupt``, ``restart``, ``env`` (a new cached environment on the path),
  ``put`` / ``get`` / ``ls`` (files under ``work/``), ``close``.

Every operation but ``cell`` ends with an ``ack`` frame. The controller sends
its first operation only after the ``kernel`` frame (``started``), so nothing
of it waits in the buffered stdin the job was read from. Standard library
only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import selectors
import time

from ai_data_agent.sandbox import checkpoint as checkpoints
from ai_data_agent.sandbox import files as session_files
from ai_data_agent.sandbox.channel import READ_CHUNK, Channel, MessageStream, widen_pipe
from ai_data_agent.sandbox.environment import as_the_user_sees_it, cgroup_oom_kills
from ai_data_agent.sandbox.execute import OutputPump
from ai_data_agent.sandbox.kernelproc import (
    KernelGone,
    KernelProcess,
    checked_error,
    checked_output,
    open_kernel,
)
from ai_data_agent.sandbox.outputs import send_artifacts, signatures

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import IO, Any

IDLE_WAIT_S = 1.0
STATUSES = {"ok": "succeeded", "error": "error", "interrupted": "interrupted"}


class Cell:
    """The cell in flight: its deadline, why it was interrupted, its output."""

    def __init__(
        self, count: int, timeout_s: float, pump: OutputPump, outputs: dict[str, Any]
    ) -> None:
        self.count = count
        self.started = time.monotonic()
        self.outputs_before = outputs  # what was under outputs/ when the cell began
        self.deadline = self.started + timeout_s
        self.kill_at: float | None = None
        self.reason: str | None = None  # timed_out, interrupted, output_exceeded
        self.pump = pump
        self.display_bytes = 0
        self.truncated = False


class SessionLoop:
    """Serves one session until ``close`` or the end of the controller's input."""

    def __init__(
        self, channel: Channel, job: dict[str, Any], space: Any, stdin_fd: int, child: Any = None
    ) -> None:
        self.channel = channel
        self.child = child  # a started code interpreter (`codeproc`) for the first kernel
        self.job = job
        self.space = space
        self.incoming = MessageStream(stdin_fd)
        widen_pipe(channel.out)  # a checkpoint's megabytes out in few writes
        self.grace_s = float(job.get("interrupt_grace_s", 2.0))
        self.display_max = int(job.get("display_max_bytes", 2 * 1024 * 1024))
        self.cell_display_max = int(job.get("cell_display_max_bytes", 8 * 1024 * 1024))
        self.kernel: KernelProcess | None = None
        self.generation = int(job.get("generation") or 0)
        self.cell: Cell | None = None
        self.idle_pump = self._pump()
        self.upload: session_files.Upload | None = None
        self.oom_seen = cgroup_oom_kills() or 0
        self.closing = False
        self.checkpoints = checkpoints.Checkpoints(self)

    # -- kernel ---------------------------------------------------------------------
    def _pump(self) -> OutputPump:
        limits = {"stdout": int(self.job["stdout_limit"]), "stderr": int(self.job["stderr_limit"])}
        return OutputPump(self.channel.emit, limits, self.job.get("output_policy") == "kill")

    def start_kernel(self) -> None:
        config = {
            "display_max_bytes": self.display_max,
            "cell_display_max_bytes": self.cell_display_max,
        }
        child, self.child = self.child, None
        self.kernel = open_kernel(self.space.env, self.space.work, config, child)
        self.generation += 1
        self.channel.emit({"k": "kernel", "event": "started", "generation": self.generation})

    def _replace_kernel(self) -> None:
        if self.kernel is not None:
            self.kernel.kill()
        self.kernel = None
        self.start_kernel()

    # -- the loop -------------------------------------------------------------------
    def run(self) -> None:
        self.start_kernel()
        self.checkpoints.preload()
        with selectors.DefaultSelector() as sel:
            while not self.closing and not self.incoming.eof:
                self._register(sel)
                for key, _ in sel.select(timeout=self._wait()):
                    self._readable(key.data)
                self._check_deadlines()
        if self.kernel is not None:
            self.kernel.kill()

    def _register(self, sel: selectors.BaseSelector) -> None:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        sel.register(self.incoming.fd, selectors.EVENT_READ, "controller")
        if self.kernel is not None:
            sel.register(self.kernel.stdout, selectors.EVENT_READ, "stdout")
            sel.register(self.kernel.stderr, selectors.EVENT_READ, "stderr")
            sel.register(self.kernel.messages_fd, selectors.EVENT_READ, "kernel")
        self.checkpoints.register(sel)

    def _wait(self) -> float:
        cell = self.cell
        if cell is None:
            return self.checkpoints.wait(IDLE_WAIT_S)
        due = cell.kill_at if cell.kill_at is not None else cell.deadline
        return max(min(due - time.monotonic(), IDLE_WAIT_S), 0.0)

    def _readable(self, what: str) -> None:
        if what == "controller":
            self.incoming.fill()
            self._serve_controller()
        elif what in ("stdout", "stderr"):
            self._forward_output(what)
        elif what == "snapshot":
            self.checkpoints.relay()
        else:
            self._serve_kernel()

    def _forward_output(self, stream: str) -> bool:
        """Forward what the stream has now; False when it had nothing."""
        assert self.kernel is not None
        fd = self.kernel.stdout if stream == "stdout" else self.kernel.stderr
        try:
            data = os.read(fd, READ_CHUNK)
        except (BlockingIOError, OSError):
            return False
        if not data:
            return False  # closed: the kernel is going; its message pipe says so
        pump = self.cell.pump if self.cell is not None else self.idle_pump
        pump.feed(stream, data)
        cell = self.cell
        if cell is not None and pump.truncated[stream] and pump.kill_on_cap and cell.reason is None:
            self._interrupt("output_exceeded")
        return True

    def _drain_output(self) -> None:
        """What the pipes hold now (bounded: a child of the code may keep writing)."""
        if self.kernel is None:
            return
        for stream in ("stdout", "stderr"):
            for _ in range(64):
                if not self._forward_output(stream):
                    break

    def _check_deadlines(self) -> None:
        self.checkpoints.tick()
        cell = self.cell
        if cell is None:
            return
        now = time.monotonic()
        if cell.kill_at is not None and now >= cell.kill_at:
            self._kernel_lost(f"the code did not stop within {self.grace_s:g} s of the interrupt")
        elif cell.reason is None and now >= cell.deadline:
            self._interrupt("timed_out")

    def _interrupt(self, reason: str) -> None:
        cell = self.cell
        if cell is None or self.kernel is None or cell.reason is not None:
            return
        cell.reason = reason
        cell.kill_at = time.monotonic() + self.grace_s
        self.kernel.interrupt()

    # -- the kernel's messages ----------------------------------------------------------
    def _serve_kernel(self) -> None:
        assert self.kernel is not None
        try:
            messages = self.kernel.read_messages()
        except KernelGone:
            self._kernel_lost(None)
            return
        for message in messages:
            kind = message.get("k")
            if kind == "display" and self.cell is not None:
                self._display(message)
            elif kind == "done" and self.cell is not None:
                self._cell_done(message)
            elif kind in checkpoints.KERNEL_REPLIES:
                self.checkpoints.kernel_reply(message)
            elif kind == "env":
                imported = [str(n) for n in message.get("imported") or []][:1000]
                self._ack("env", imported=imported)

    def _display(self, message: dict[str, Any]) -> None:
        cell = self.cell
        assert cell is not None
        output = checked_output(message, self.display_max)
        size = len(json.dumps(output)) if output is not None else 0
        if output is None or cell.display_bytes + size > self.cell_display_max:
            cell.truncated = True
            return
        cell.display_bytes += size
        self.channel.emit(dict(output, k="display"))

    def _cell_done(self, message: dict[str, Any]) -> None:
        cell = self.cell
        assert cell is not None
        status = STATUSES.get(str(message.get("status")), "error")
        if status == "interrupted":
            status = cell.reason or "error"  # a KeyboardInterrupt the code raised itself
        result = message.get("result")
        self._finish(
            status=status,
            state="preserved",
            error=checked_error(message.get("error")),
            result=checked_output(result, self.display_max) if isinstance(result, dict) else None,
            truncated=cell.truncated or bool(message.get("truncated")),
        )

    def _kernel_lost(self, why: str | None) -> None:
        """The kernel died or was killed: the cell (if any) ends with its state lost; a new kernel."""
        cell = self.cell
        signal_number = self.kernel.exit_signal() if self.kernel is not None else None
        oom = cgroup_oom_kills() or 0
        out_of_memory = oom > self.oom_seen
        self.oom_seen = oom
        if cell is not None:
            self._drain_output()
        self._replace_kernel()
        if out_of_memory:
            status, reason = (
                "memory_exceeded",
                "the memory limit was reached; the kernel was killed",
            )
        elif cell is not None and cell.reason is not None:
            status, reason = cell.reason, why or "the kernel was killed"
        else:
            status = "kernel_died"
            reason = (
                f"the kernel died (signal {signal_number})"
                if signal_number
                else "the kernel exited"
            )
        if cell is None:
            self.channel.emit(
                {"k": "kernel", "event": "lost", "generation": self.generation, "reason": reason}
            )
            return
        error = {"ename": "KernelLost", "evalue": reason, "traceback": [reason + "\n"]}
        self._finish(
            status=status, state="lost", error=error, result=None, truncated=cell.truncated
        )

    def _finish(self, **fields: Any) -> None:
        cell = self.cell
        assert cell is not None
        if cell.count == checkpoints.RESTORE_COUNT:
            self.cell = None
            self.checkpoints.restored({"error": fields["error"]["evalue"]}, fields["state"])
            return
        if fields["state"] == "preserved":
            self._drain_output()
        for stream in ("stdout", "stderr"):
            cell.pump.feed(stream, b"", final=True)
        caps = self.job.get("artifacts") or {}
        now = signatures(self.space.outputs)
        written = {rel for rel, sig in now.items() if cell.outputs_before.get(rel) != sig}
        artifacts = send_artifacts(
            self.channel,
            self.space.outputs,
            int(caps.get("max_count", 0)),
            int(caps.get("max_total_bytes", 0)),
            only=written,
        )
        self.cell = None
        self.channel.emit(
            {
                "k": "cell",
                "count": cell.count,
                "generation": self.generation,
                "duration_s": time.monotonic() - cell.started,
                "stdout_truncated": cell.pump.truncated["stdout"],
                "stderr_truncated": cell.pump.truncated["stderr"],
                "artifacts": artifacts,
                **fields,
            }
        )

    # -- the controller's operations ------------------------------------------------------
    def _ack(self, op: str, ok: bool = True, **extra: Any) -> None:
        self.channel.emit(dict(extra, k="ack", op=op, ok=ok))

    def _serve_controller(self) -> None:
        while True:
            if self.upload is not None:
                self.upload = self.upload.feed(self.incoming, self._ack)
                if self.upload is not None:
                    return
            message = self.incoming.message()
            if message is None:
                return
            self._operation(message)

    def _operation(self, message: dict[str, Any]) -> None:
        op = str(message.get("op"))
        if op == "interrupt":
            self._interrupt("interrupted")
            self._ack("interrupt", running=self.cell is not None)
        elif op == "close":
            self.closing = True
        elif self.cell is not None or self.checkpoints.busy:
            self._ack(op, ok=False, error=f"a {'cell' if self.cell else 'checkpoint'} is running")
        elif op == "cell":
            self._start_cell(message)
        elif op == "restart":
            self._replace_kernel()
            self._ack("restart", generation=self.generation)
        elif op == "env":
            self._switch_env(message)
        elif op in checkpoints.OPS:
            self.upload = self.checkpoints.operation(message)
        else:
            self.upload = session_files.operation(self.channel, self.space, message, self._ack)

    def begin_cell(self, count: int, timeout_s: float) -> Cell:
        """The cell in flight from now (a restore too), under a cell's deadlines."""
        self.cell = Cell(count, timeout_s, self._pump(), signatures(self.space.outputs))
        return self.cell

    def _start_cell(self, message: dict[str, Any]) -> None:
        count = int(message.get("count", 0))
        self.begin_cell(count, float(message.get("timeout_s", 60)))
        try:
            assert self.kernel is not None
            self.kernel.send({"op": "cell", "code": str(message.get("code", "")), "count": count})
        except KernelGone:
            self._kernel_lost(None)

    def _switch_env(self, message: dict[str, Any]) -> None:
        add = [str(p) for p in message.get("add") or []]
        remove = [str(p) for p in message.get("remove") or []]
        parts = [p for p in self.space.env["PYTHONPATH"].split(os.pathsep) if p not in remove + add]
        self.space.env["PYTHONPATH"] = os.pathsep.join(parts[:1] + add + parts[1:])
        assert self.kernel is not None
        watch = [str(n) for n in message.get("watch") or []]
        try:
            self.kernel.send({"op": "env", "add": add, "remove": remove, "watch": watch})
        except KernelGone:
            self._kernel_lost(None)
            self._ack("env", imported=[])


def serve(
    channel: Channel, job: dict[str, Any], space: Any, stdin: IO[bytes], child: Any = None
) -> dict[str, Any]:
    """Mode ``session``: until ``close``; the result frame's fields. ``child``, a started
    code interpreter (`codeproc`), becomes the first kernel."""
    loop = SessionLoop(channel, job, space, stdin.fileno(), child)
    try:
        loop.run()
    except KernelGone as exc:
        return {"error": as_the_user_sees_it(f"the kernel could not start: {exc}", space.sandbox)}
    return {"generation": loop.generation}
