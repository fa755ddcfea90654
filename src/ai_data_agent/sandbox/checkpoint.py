"""The runner's side of checkpoints: the operations, and what comes back into a fresh kernel.

    checkpoints = Checkpoints(loop)                  # the session loop's; writes the serialiser
    upload = checkpoints.operation(message)          # checkpoint, restore_data, restore
    checkpoints.kernel_reply(message)                # the kernel's "snapshot" and "restored"

Operations of the controller (`OPS`):

* ``checkpoint``: the kernel is told to fork a child that writes the
  namespace to a FIFO (`snapshot`); the files go out at once, then the
  ``ack``: the checkpoint is captured, and the next cells may run while the
  namespace streams out (`capture.Checkpoint`, ``ckpt_done`` at its end). Past
  ``max_bytes`` or the deadline the child is killed and the checkpoint fails;
  the kernel and the files are untouched either way.
* ``restore_data``: the bytes of a namespace, kept in a private file until
* ``restore``: the kernel reads them back (as a cell: at the time limit an
  interrupt, then a fresh kernel, whose state is lost); one ``restored``
  frame (names restored and lost, ``state``), then the ``ack``.

Files come back through ``put``. One checkpoint or restore at a time.
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import time

from ai_data_agent.sandbox import files as session_files
from ai_data_agent.sandbox.capture import Checkpoint, private_dir

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

OPS = ("checkpoint", "restore_data", "restore")
KERNEL_REPLIES = ("snapshot", "restored")
RESTORE_COUNT = -1  # the restore runs as a cell of this count, under a cell's deadlines
SERIALISER_DIR = ".serialiser"


def install_serialiser(sandbox: str, sources: dict[str, str]) -> str:
    """Write the controller's serialiser (file name -> source) read-only into the
    sandbox dir; the directory to put on ``sys.path`` to import it."""
    where = os.path.join(sandbox, SERIALISER_DIR)
    package = os.path.join(where, "_ai_data_agent_cloudpickle")
    os.makedirs(package, mode=0o700)
    for name, source in sources.items():
        if "/" in name or not name.endswith(".py"):
            raise ValueError(f"bad serialiser file {name!r}")
        with open(os.path.join(package, name), "w", encoding="utf-8") as fh:
            fh.write(source)
        os.chmod(os.path.join(package, name), 0o400)
    os.chmod(package, 0o500)
    os.chmod(where, 0o500)
    return where


class Checkpoints:
    """A session loop's checkpoints and restores: the operations, and the one in flight."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        sources = loop.job.get("serialiser") or {}
        self.serialiser = install_serialiser(loop.space.sandbox, sources) if sources else ""
        self.current: Checkpoint | None = None
        self.file_signatures: dict[str, list[int]] = {}
        self.signatures_seq: object = None

    def preload(self, modules: Any = ()) -> None:
        """A session that goes on from a checkpoint (its generation counts on from one):
        its kernel imports the serialiser (at its start) and the checkpoint's ``modules``
        (as its bytes come: ``restore_data``) while the bytes arrive."""
        if self.serialiser and int(self.loop.job.get("generation") or 0) and self.loop.kernel:
            message = {"op": "serialiser", "serialiser": self.serialiser, "modules": modules}
            try:
                self.loop.kernel.send(message)
            except ChildProcessError:
                pass  # the kernel is gone: its loss is reported as usual

    @property
    def busy(self) -> bool:
        """Other operations wait until the namespace is captured and the files are sent."""
        return self.current is not None and not self.current.captured

    def operation(self, message: dict[str, Any]) -> session_files.Upload | None:
        """``checkpoint``, ``restore_data`` (an upload, returned) or ``restore``."""
        op = str(message.get("op"))
        if self.current is not None:  # its namespace still streaming out
            self.loop._ack(op, ok=False, error="a checkpoint is running")
        elif op != "restore_data" and not self.serialiser:
            self.loop._ack(op, ok=False, error="this session has no serialiser")
        elif op == "checkpoint":
            self._checkpoint(message)
        elif op == "restore_data":
            modules = [str(m) for m in message.get("modules") or []][:100]
            if modules:
                self.preload(modules)
            return restore_upload(self.loop, message)
        else:
            self._restore(message)
        return None

    def _checkpoint(self, message: dict[str, Any]) -> None:
        kernel = self.loop.kernel
        try:
            job = Checkpoint(self, message)
            assert kernel is not None
            kernel.send(job.kernel_message())
        except OSError as exc:
            self.loop._ack("checkpoint", ok=False, error=f"cannot start: {exc}")
            return
        except ChildProcessError:  # the kernel died: its loss is reported as usual
            job.fail("the kernel died")
            return
        self.current = job
        job.capture()

    def _restore(self, message: dict[str, Any]) -> None:
        loop = self.loop
        loop.begin_cell(RESTORE_COUNT, float(message.get("timeout_s", 60)))
        request = {"op": "restore", "path": restore_path(loop), "serialiser": self.serialiser}
        try:
            loop.kernel.send(request)
        except ChildProcessError:
            loop._kernel_lost(None)

    def kernel_reply(self, message: dict[str, Any]) -> None:
        if message.get("k") == "snapshot" and self.current is not None:
            self.current.started(message)
        elif message.get("k") == "restored" and self.loop.cell is not None:
            self.loop.cell = None
            self.restored(message, "restored")

    def restored(self, message: dict[str, Any], state: str) -> None:
        """The restore's end: the ``restored`` frame, then the ack."""
        lost = [e for e in message.get("lost") or [] if isinstance(e, dict)]
        self.loop.channel.emit(
            {
                "k": "restored",
                "state": state,
                "restored": [str(n)[:200] for n in message.get("restored") or []][:10_000],
                "lost": [
                    {k: str(e.get(k))[:300] for k in ("name", "type", "reason")} for e in lost
                ][:10_000],
                "error": str(message.get("error") or "")[:2000],
            }
        )
        self.loop._ack("restore")

    def register(self, sel: Any) -> None:
        job = self.current
        if job is not None and job.relaying:
            import selectors

            sel.register(job.fd, selectors.EVENT_READ, "snapshot")

    def wait(self, default: float) -> float:
        job = self.current
        if job is None:
            return default
        return max(min(job.deadline - time.monotonic(), default), 0.0)

    def relay(self) -> None:
        if self.current is not None:
            self.current.relay()

    def tick(self) -> None:
        if self.current is not None:
            self.current.tick(time.monotonic())

    def ended(self, job: Checkpoint, acknowledge: bool) -> None:
        """The checkpoint's end (``ckpt_done`` is out); one that failed before its capture
        is acknowledged as failed."""
        self.current = None
        if acknowledge:
            self.loop._ack("checkpoint", ok=False)


def restore_upload(loop: Any, message: dict[str, Any]) -> session_files.Upload:
    """``restore_data``: the namespace's bytes into the private dir (acknowledged as such)."""
    where = private_dir(loop.space.sandbox)
    return session_files.Upload("restore.ns", where, max(int(message["size"]), 0), "restore_data")


def restore_path(loop: Any) -> str:
    return os.path.join(private_dir(loop.space.sandbox), "restore.ns")
