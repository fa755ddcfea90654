"""Early writeback (`storage.writeback`): a durable blob's bytes go to the disk as they come."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_data_agent.storage import LocalBlobStore
from ai_data_agent.storage.writeback import EarlyWriteback

pytestmark = pytest.mark.skipif(
    not os.uname().sysname == "Linux", reason="sync_file_range is Linux's"
)


def test_each_step_is_started_once_and_the_tail_is_left_to_fsync(tmp_path: Path) -> None:
    with (tmp_path / "f").open("wb") as fh:
        early = EarlyWriteback(fh.fileno(), step_bytes=4096)
        fh.write(bytes(3000))
        fh.flush()
        assert not early.due(3000)
        early.written(3000)
        assert early.started == 0
        fh.write(bytes(6000))
        fh.flush()
        early.written(9000)
        assert early.started == 9000
        assert not early.due(9000 + 4095)


def test_a_descriptor_that_refuses_it_turns_it_off(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # sync_file_range on a pipe fails (ESPIPE)
    try:
        early = EarlyWriteback(write_end, step_bytes=1)
        early.written(10)
        assert early.started == 0 and not early.due(100)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_durable_blob_written_in_steps_holds_every_byte(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    chunk = os.urandom(1 << 20)
    with store.writer() as writer:
        for _ in range(20):  # 20 MiB: two writeback steps and a tail
            writer.write(chunk)
        blob = writer.commit()
    with store.open(blob.digest) as fh:
        assert fh.read() == chunk * 20
