"""A session's checkpoint taken out of its sandbox into a blob store.

    taken = take_snapshot(session, store, seq=4, base=previous, max_bytes=cap, timeout_s=60)
    snap = taken.commit()
    snap.namespace, snap.files, snap.kept, snap.lost      # blobs and what they hold

The namespace is serialised inside the sandbox (`sandbox.checkpoint`,
`sandbox.snapshot`) and reaches here as opaque bytes: nothing on the host
ever unpickles it. It is streamed, with each file of the working directory,
into its own blob (content-addressed, so an unchanged file costs nothing
twice). `restore.restore_snapshot` puts it back into a new sandbox.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ai_data_agent.checkpoint_models import LostVariable
from ai_data_agent.errors import AiDataAgentError, CheckpointFailed, RequestTooLarge, SessionGone
from ai_data_agent.executor.frames import (
    AckFrame,
    CheckpointBegin,
    CheckpointData,
    CheckpointDone,
    CheckpointEnd,
    CheckpointSame,
    Frame,
    LostEntry,
)
from ai_data_agent.executor.session.session import Session
from ai_data_agent.models import SkippedArtifact
from ai_data_agent.storage import BlobRef, BlobStore, BlobWriter

__all__ = ["Snapshot", "StoredFile", "Taken", "lost_variables", "take_snapshot"]

SLACK_S = 30.0  # beyond the serialiser's time limit: the files, and the wire


@dataclass(frozen=True)
class StoredFile:
    """A file of the working directory in a checkpoint: its path and its blob."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class Snapshot:
    """A checkpoint as taken: its blobs, and what it says of the namespace."""

    namespace: BlobRef
    files: tuple[StoredFile, ...]
    kept: tuple[str, ...] = ()
    lost: tuple[LostVariable, ...] = ()
    skipped: tuple[SkippedArtifact, ...] = ()
    execution_count: int = 0
    generation: int = 0
    streamed_bytes: int = 0
    modules: tuple[str, ...] = ()  # a restore imports them while the bytes arrive

    @property
    def bytes(self) -> int:
        return self.namespace.size + sum(f.size for f in self.files)


def lost_variables(entries: list[LostEntry]) -> tuple[LostVariable, ...]:
    return tuple(LostVariable(name=e.name, type=e.type, reason=e.reason) for e in entries)


@dataclass
class _Part:
    """A blob written whole, committed later (``path`` ``""``: the namespace)."""

    path: str
    writer: BlobWriter | None = None
    known: StoredFile | None = None  # unchanged since the base: its blob is there already


@dataclass
class _Receiver:
    """A checkpoint's frames into blobs, within ``max_bytes`` in all; the sidecar of the
    session's wire until ``ckpt_done`` (or the stream's end)."""

    store: BlobStore
    base: dict[str, StoredFile]
    max_bytes: int
    owns_ack: bool = False  # nobody waits for the capture's ack: it is the receiver's too
    acked: bool = False
    path: str | None = None
    writer: BlobWriter | None = None
    parts: list[_Part] = field(default_factory=list)
    done: CheckpointDone | None = None
    written: int = 0
    problem: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)  # no frame of it to come

    @property
    def complete(self) -> bool:
        """Every frame of the checkpoint is in (its ack too, when the receiver owns it)."""
        return self.finished.is_set() and (self.acked or not self.owns_ack)

    def take(self, frame: Frame | None) -> bool:
        """Keep ``frame`` if it is the checkpoint's (True); None: the stream ended."""
        if frame is None:
            self.problem = self.problem or "the session's sandbox ended"
            self.acked = True
            self.finished.set()
        elif isinstance(frame, AckFrame) and self.owns_ack and frame.op == "checkpoint":
            self._ack(frame)
        elif isinstance(frame, CheckpointBegin):
            self._begin(frame.path)
        elif isinstance(frame, CheckpointData):
            self._data(frame.raw, frame.data)
        elif isinstance(frame, CheckpointEnd):
            self._end()
        elif isinstance(frame, CheckpointSame):
            known = self.base.get(frame.path)
            if known is None or not self.store.exists(known.digest):
                self.problem = self.problem or f"{frame.path}: unchanged, but its blob is gone"
            else:
                self.parts.append(_Part(frame.path, known=known))
        elif isinstance(frame, CheckpointDone):
            self.done = frame
            self.finished.set()
        else:
            return False
        return True

    def _ack(self, frame: AckFrame) -> None:
        self.acked = True
        if frame.ok:
            return
        if self.done is None:  # refused; one that failed before its capture reported why
            self.problem = self.problem or frame.error or "the sandbox refused the checkpoint"
        self.finished.set()

    def _begin(self, path: str) -> None:
        self._drop(self.writer)
        self.path, self.writer = path, None
        if self.problem is None:
            left = max(self.max_bytes - self.written, 0)
            # Not fsynced: a restore checks every blob against its digest (`restore`).
            self.writer = self.store.writer(max_bytes=left, what="checkpoint", durable=False)

    def _data(self, raw: bytes | None, text: str) -> None:
        if self.writer is None:
            return
        try:
            chunk = raw if raw is not None else base64.b64decode(text, validate=True)
            self.writer.write(chunk)
            self.written += len(chunk)
        except binascii.Error:
            self.problem = "a malformed frame from the sandbox"
            self._drop(self.writer)
            self.writer = None
        except RequestTooLarge:
            self.problem = f"the checkpoint is larger than {self.max_bytes} bytes"
            self.writer = None  # the writer discarded its file

    def _end(self) -> None:
        if self.writer is not None and self.path is not None:
            self.parts.append(_Part(self.path, self.writer))
        self.writer = None

    @staticmethod
    def _drop(writer: BlobWriter | None) -> None:
        if writer is not None:
            writer.__exit__(None, None, None)

    def blobs(self) -> dict[str, int]:
        """Every blob the parts received name (digest -> size), before they are committed."""
        found: dict[str, int] = {}
        for part in self.parts:
            if part.known is not None:
                found[part.known.digest] = part.known.size
            elif part.writer is not None:
                found[part.writer.digest] = part.writer.size
        return found

    def discard(self) -> None:
        self._drop(self.writer)
        for part in self.parts:
            self._drop(part.writer)
        self.writer, self.parts = None, []

    def failure(self, session_id: str) -> AiDataAgentError | None:
        """Why the checkpoint failed, once it is over; None when it did not."""
        done = self.done
        error = self.problem or (done.error if done is not None else "no report")
        if error is None and not any(p.path == "" for p in self.parts):
            error = "no namespace from the sandbox"
        if error is None:
            return None
        if "larger than" in error:
            return RequestTooLarge("checkpoint", f"larger than {self.max_bytes} bytes")
        return CheckpointFailed(
            f"the checkpoint of session {session_id} failed: {error}", session_id=session_id
        )


@dataclass
class Taken:
    """A checkpoint captured in its sandbox (the namespace at that instant, the files sent);
    the namespace may still be streaming out while the session goes on. `commit` waits for
    it and makes the blobs visible (not fsynced: see `restore.restore_snapshot`)."""

    receiver: _Receiver
    session_id: str
    execution_count: int
    generation: int
    wait_s: float

    def streamed(self) -> bool:
        """Wait, within its time, for the namespace to be out of the sandbox (or failed)."""
        return self.receiver.settled.wait(self.wait_s)

    def commit(self, admit: Callable[[dict[str, int]], None] | None = None) -> Snapshot:
        """Wait for the rest and store it; ``admit`` sees every blob it names (digest ->
        size) first, and may refuse it by raising (a quota).

        Raises:
            CheckpointFailed, RequestTooLarge: the rest of it failed (nothing is kept).
            What ``admit`` raises (nothing is kept).
        """
        receiver = self.receiver
        try:
            if not receiver.finished.wait(self.wait_s):
                receiver.problem = receiver.problem or "the namespace did not arrive in time"
            failure = receiver.failure(self.session_id)
            if failure is not None:
                raise failure
            if admit is not None:
                admit(receiver.blobs())
            namespace, files = self._commit_parts()
        finally:
            receiver.discard()
        assert receiver.done is not None  # failure() says so otherwise
        done = receiver.done
        return Snapshot(
            namespace=namespace,
            files=tuple(files),
            kept=tuple(done.kept),
            lost=lost_variables(done.lost),
            skipped=tuple(SkippedArtifact(path=s.path, reason=s.reason) for s in done.skipped),
            execution_count=self.execution_count,
            generation=self.generation,
            streamed_bytes=done.bytes,
            modules=tuple(done.modules),
        )

    def _commit_parts(self) -> tuple[BlobRef, list[StoredFile]]:
        namespace: BlobRef | None = None
        files: list[StoredFile] = []
        for part in self.receiver.parts:
            if part.known is not None:
                files.append(part.known)
            elif part.writer is not None:
                ref = part.writer.commit()
                if part.path:
                    files.append(StoredFile(part.path, ref.digest, ref.size))
                else:
                    namespace = ref
        assert namespace is not None  # failure() checked that there is one
        return namespace, files


def take_snapshot(
    session: Session,
    store: BlobStore,
    *,
    seq: int,
    base: tuple[int, tuple[StoredFile, ...]] | None,
    max_bytes: int,
    timeout_s: float,
    wait: bool = True,
) -> Taken:
    """Capture a checkpoint of ``session`` (idle): on return its namespace is forked in the
    sandbox and its files are here; `Taken.commit` waits for the namespace and stores it.
    ``base`` is the checkpoint taken before in the same sandbox (its seq and files): files
    unchanged since are not sent again. Without ``wait``, return once the order is sent:
    the sandbox captures the checkpoint before it reads the next operation, and the
    capture's failure is the commit's.

    Raises:
        CheckpointFailed: the serialiser failed or ran out of time; the session is unharmed.
        RequestTooLarge: the checkpoint would pass ``max_bytes``.
        SessionBusy, SessionGone: as for any call.
    """
    wire = session.wire
    if wire is None:
        raise SessionGone(f"session {session.id} has no sandbox", session_id=session.id)
    files = {f.path: f for f in base[1]} if base is not None else {}
    receiver = _Receiver(store, files, max_bytes, owns_ack=not wait)

    def take(frame: Frame | None) -> bool:
        kept = receiver.take(frame)
        if receiver.complete and wire.sidecar is take:
            wire.sidecar = None  # the frames after it are the calls' again
            receiver.settled.set()
        return kept

    message = {
        "op": "checkpoint",
        "seq": seq,
        "base": base[0] if base is not None else None,
        "max_bytes": max_bytes,
        "timeout_s": timeout_s,
    }
    wire.sidecar = take
    try:
        if not wait:
            wire.send(message)
            return Taken(
                receiver,
                session.id,
                session.execution_count,
                session.generation,
                timeout_s + SLACK_S,
            )
        ack = session.call(message, deadline_s=timeout_s + SLACK_S)
        if not ack.ok:
            receiver.finished.wait(SLACK_S)  # its report comes before the ack
            raise receiver.failure(session.id) or CheckpointFailed(
                f"the checkpoint of session {session.id} failed: {ack.error}",
                session_id=session.id,
            )
    except BaseException:
        if wire.sidecar is take:
            wire.sidecar = None
        receiver.settled.set()
        receiver.discard()
        raise
    return Taken(
        receiver, session.id, session.execution_count, session.generation, timeout_s + SLACK_S
    )
