"""A checkpoint put back into a session's new sandbox: its files, then its namespace read by the kernel.

    outcome = restore_snapshot(new_session, store, snap, timeout_s=60)
    outcome.state, outcome.restored, outcome.lost         # "restored", names back, names not

The blobs stream back into the sandbox, hashed on the way: a blob that no
longer has the digest the checkpoint names is refused (`CheckpointFailed`)
before the kernel reads anything (which is why checkpoint blobs need no
fsync). Nothing on the host unpickles anything.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from loguru import logger

from ai_data_agent.checkpoint_models import LostVariable
from ai_data_agent.errors import CheckpointFailed
from ai_data_agent.executor.frames import Frame, RestoredFrame
from ai_data_agent.executor.session.checkpoint import SLACK_S, Snapshot, lost_variables
from ai_data_agent.executor.session.session import Session
from ai_data_agent.storage import BlobStore

__all__ = ["RestoreOutcome", "restore_snapshot"]

SEND_CHUNK = 1024 * 1024
SEND_BYTES_PER_S = 10 * 1024 * 1024  # the slowest stream a restore waits for


@dataclass(frozen=True)
class RestoreOutcome:
    """``restored``: the kernel read the namespace back (``lost`` lists what it could not);
    ``lost``: the kernel had to be replaced, the files are back and no variable is."""

    state: str
    restored: tuple[str, ...] = ()
    lost: tuple[LostVariable, ...] = ()
    error: str | None = None


class _Verified:
    """A blob's bytes in chunks, hashed as they go; `check` after the last one."""

    def __init__(self, store: BlobStore, digest: str) -> None:
        self.digest = digest
        self.hash = hashlib.sha256()
        try:
            self.file: BinaryIO = store.open(digest)
        except FileNotFoundError as exc:
            raise CheckpointFailed(f"the checkpoint's blob {digest[:12]} is gone") from exc

    def chunks(self) -> Iterator[bytes]:
        with self.file:
            while chunk := self.file.read(SEND_CHUNK):
                self.hash.update(chunk)
                yield chunk

    def check(self, what: str) -> None:
        if self.hash.hexdigest() != self.digest:
            raise CheckpointFailed(
                f"refused: {what} no longer has the content the checkpoint was signed with"
            )


def restore_snapshot(
    session: Session, store: BlobStore, snap: Snapshot, *, timeout_s: float
) -> RestoreOutcome:
    """Put ``snap``'s files back in ``session`` (fresh), then have its kernel read the namespace;
    the warm pool refills after this, not during it (see `start.start_kernel`).

    Raises:
        CheckpointFailed: a blob is gone or changed (nothing of the namespace was read).
        SessionGone: the sandbox died.
    """
    try:
        return _restore(session, store, snap, timeout_s)
    finally:
        if session.wire is not None:
            session.wire.link.settled()


def _restore(
    session: Session, store: BlobStore, snap: Snapshot, timeout_s: float
) -> RestoreOutcome:
    began = time.monotonic()
    for item in snap.files:
        blob = _Verified(store, item.digest)
        wait = 60.0 + item.size / SEND_BYTES_PER_S
        session.call({"op": "put", "path": item.path, "size": item.size}, blob.chunks(), wait)
        blob.check(item.path)
    blob = _Verified(store, snap.namespace.digest)
    size = snap.namespace.size
    ack = session.call(
        {"op": "restore_data", "size": size, "modules": list(snap.modules)},
        blob.chunks(),
        60.0 + size / SEND_BYTES_PER_S,
    )
    blob.check("the namespace")
    if not ack.ok:
        raise CheckpointFailed(f"the sandbox could not take the namespace: {ack.error}")
    reports: list[RestoredFrame] = []

    def keep(frame: Frame) -> None:
        if isinstance(frame, RestoredFrame):
            reports.append(frame)

    started = time.monotonic()
    session.call(
        {"op": "restore", "timeout_s": timeout_s}, deadline_s=timeout_s + SLACK_S, on_frame=keep
    )
    ended = time.monotonic()
    if not reports:
        raise CheckpointFailed("the sandbox did not report the restore")
    report = reports[-1]
    lost = list(lost_variables(report.lost))
    unread = [n for n in snap.kept if n not in report.restored and n not in {v.name for v in lost}]
    why = report.error or "not read back"
    lost += [LostVariable(name=n, reason=why) for n in unread]
    logger.bind(run_id=session.id).info(
        "restored {} variable(s), {} lost: {} bytes in {:.2f} s, read in {:.2f} s",
        len(report.restored),
        len(lost),
        snap.bytes,
        started - began,
        ended - started,
    )
    return RestoreOutcome(
        state=report.state,
        restored=tuple(report.restored),
        lost=tuple(lost),
        error=report.error or None,
    )
