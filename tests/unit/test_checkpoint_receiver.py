"""A checkpoint's frames on the host: the receiver of a checkpoint whose order was sent without
waiting for its ack (the one after a cell) takes that ack too, and lets the wire go only once
every frame of it is in."""

from __future__ import annotations

from pathlib import Path

from ai_data_agent.errors import CheckpointFailed
from ai_data_agent.executor.frames import (
    AckFrame,
    CheckpointBegin,
    CheckpointData,
    CheckpointDone,
    CheckpointEnd,
)
from ai_data_agent.executor.session.checkpoint import _Receiver
from ai_data_agent.storage import LocalBlobStore


def receiver(tmp_path: Path) -> _Receiver:
    return _Receiver(LocalBlobStore(tmp_path), {}, max_bytes=1 << 20, owns_ack=True)


def test_an_owned_ack_then_the_namespace_completes_the_checkpoint(tmp_path: Path) -> None:
    taken = receiver(tmp_path)
    assert taken.take(AckFrame(k="ack", op="checkpoint", ok=True))
    assert not taken.complete
    for frame in (
        CheckpointBegin(k="ckpt_begin", path=""),
        CheckpointData(k="ckpt_data", raw=b"namespace"),
        CheckpointEnd(k="ckpt_end"),
        CheckpointDone(k="ckpt_done", seq=1, bytes=9, kept=["x"]),
    ):
        assert taken.take(frame)
    assert taken.complete and taken.failure("s") is None
    writer = taken.parts[0].writer
    assert writer is not None and taken.blobs() == {writer.digest: 9}
    taken.discard()


def test_a_failure_before_the_capture_waits_for_its_ack_and_names_the_reason(
    tmp_path: Path,
) -> None:
    taken = receiver(tmp_path)
    assert taken.take(CheckpointDone(k="ckpt_done", error="the kernel died"))
    assert taken.finished.is_set() and not taken.complete  # its ack is still to come
    assert taken.take(AckFrame(k="ack", op="checkpoint", ok=False))
    assert taken.complete
    failure = taken.failure("s")
    assert isinstance(failure, CheckpointFailed) and "the kernel died" in failure.message


def test_a_refused_order_ends_it_and_other_acks_are_not_its_own(tmp_path: Path) -> None:
    taken = receiver(tmp_path)
    assert not taken.take(AckFrame(k="ack", op="put", ok=True))
    assert taken.take(AckFrame(k="ack", op="checkpoint", ok=False, error="a checkpoint is running"))
    assert taken.complete and "a checkpoint is running" in str(taken.failure("s"))
