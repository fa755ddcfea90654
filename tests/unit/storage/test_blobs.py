"""The directory blob store: streamed, hashed, visible only when whole, swept when unnamed."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from ai_data_agent.errors import ConfigurationError, RequestTooLarge
from ai_data_agent.storage import BlobRef, LocalBlobStore
from ai_data_agent.storage.blobs import PARTIAL, is_digest


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "storage")


def _partials(store: LocalBlobStore) -> list[Path]:
    return list((store.root / PARTIAL).iterdir())


def test_a_committed_blob_is_named_by_its_sha256_and_read_back(store: LocalBlobStore) -> None:
    with store.writer() as writer:
        writer.write(b"col\n")
        writer.write(b"1\n")
        assert writer.size == 6
        blob = writer.commit()
    assert blob == BlobRef(hashlib.sha256(b"col\n1\n").hexdigest(), 6)
    assert store.exists(blob.digest) and store.size(blob.digest) == 6
    with store.open(blob.digest) as fh:
        assert fh.read() == b"col\n1\n"
    path = store.path(blob.digest)
    assert (path is not None and not os.access(path, os.W_OK)) or os.geteuid() == 0
    assert path is not None and path.stat().st_mode & 0o777 == 0o444
    assert _partials(store) == []


def test_nothing_is_visible_before_commit_and_an_abandoned_writer_leaves_nothing(
    store: LocalBlobStore,
) -> None:
    digest = hashlib.sha256(b"half").hexdigest()
    with pytest.raises(ConnectionError), store.writer() as writer:
        writer.write(b"half")
        assert not store.exists(digest)
        raise ConnectionError("the client went away")
    assert not store.exists(digest)
    assert _partials(store) == []
    assert store.usage() == (0, 0)


def test_the_cap_is_enforced_while_streaming_and_keeps_nothing(store: LocalBlobStore) -> None:
    with store.writer(max_bytes=10, what="files.big.csv") as writer:
        writer.write(b"x" * 10)
        with pytest.raises(RequestTooLarge) as caught:
            writer.write(b"y")
    assert caught.value.field == "files.big.csv"
    assert "larger than 10 bytes" in str(caught.value)
    assert _partials(store) == [] and store.usage() == (0, 0)
    with pytest.raises(ValueError):
        writer.commit()


def test_the_same_bytes_twice_are_one_blob(store: LocalBlobStore) -> None:
    refs = []
    for _ in range(2):
        with store.writer() as writer:
            writer.write(b"same")
            refs.append(writer.commit())
    assert refs[0] == refs[1]
    assert store.usage() == (1, 4)


def test_a_blob_written_without_fsync_reads_back_the_same(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    with store.writer(durable=False) as writer:
        writer.write(b"checkpoint")
        ref = writer.commit()
    assert synced == []
    with store.open(ref.digest) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == ref.digest
    with store.writer() as writer:  # durable, but the blob is there already: no fsync
        writer.write(b"checkpoint")
        assert writer.commit() == ref
    assert synced == []


def test_concurrent_writers_do_not_mix(store: LocalBlobStore) -> None:
    results: dict[int, BlobRef] = {}

    def write(n: int) -> None:
        with store.writer() as writer:
            for _ in range(50):
                writer.write(bytes([n]) * 1000)
            results[n] = writer.commit()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, ref in results.items():
        assert ref.digest == hashlib.sha256(bytes([n]) * 50_000).hexdigest()
        with store.open(ref.digest) as fh:
            assert fh.read() == bytes([n]) * 50_000


def test_unknown_and_malformed_digests_are_absent(store: LocalBlobStore) -> None:
    store.prepare()
    assert store.path("0" * 64) is None and store.size("0" * 64) is None
    assert store.path("../../etc/passwd") is None
    assert not store.delete("nothing")
    with pytest.raises(FileNotFoundError):
        store.open("0" * 64)
    assert is_digest("a" * 64) and not is_digest("A" * 64) and not is_digest("a" * 63)


def test_sweep_removes_only_old_unnamed_blobs_and_cut_uploads(store: LocalBlobStore) -> None:
    digests = []
    for data in (b"kept", b"unnamed", b"fresh"):
        with store.writer() as writer:
            writer.write(data)
            digests.append(writer.commit().digest)
    kept, unnamed, fresh = digests
    crash_leftover = store.root / PARTIAL / "upload-crashed"
    crash_leftover.write_bytes(b"partial")
    old = time.time() - 7200
    for digest in (kept, unnamed):
        path = store.path(digest)
        assert path is not None
        os.utime(path, (old, old))
    os.utime(crash_leftover, (old, old))
    assert store.sweep({kept}, older_than_s=3600) == [unnamed]
    assert store.exists(kept) and store.exists(fresh) and not store.exists(unnamed)
    assert not crash_leftover.exists()
    assert store.delete(fresh) and not store.exists(fresh)


def test_a_storage_dir_that_cannot_be_written_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="AI_DATA_AGENT_STORAGE_DIR"):
        LocalBlobStore(blocker / "storage").prepare()
