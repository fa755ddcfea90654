"""`ArtifactCollector`: every artifact frame from the sandbox is checked on the host.

Frames are fed as `Conversation` feeds them; each rejection names its reason in
``skipped``, leaves no file (final or temporary) behind, and never stops the
next artifact from arriving.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from ai_data_agent.executor.artifacts import MAX_SKIPPED_LISTED, ArtifactCollector
from ai_data_agent.executor.frames import (
    ArtifactBegin,
    ArtifactData,
    ArtifactEnd,
    ArtifactsSection,
    SkippedEntry,
)

MAX_COUNT = 3
MAX_BYTES = 100


def begin(path: str, size: int) -> ArtifactBegin:
    return ArtifactBegin(k="artifact_begin", path=path, size=size)


def data(chunk: bytes) -> ArtifactData:
    return ArtifactData.model_validate(
        {"k": "artifact_data", "d": base64.b64encode(chunk).decode()}
    )


def raw_data(text: str) -> ArtifactData:
    return ArtifactData.model_validate({"k": "artifact_data", "d": text})


def end(size: int, sha256: str) -> ArtifactEnd:
    return ArtifactEnd(k="artifact_end", size=size, sha256=sha256)


def send(collector: ArtifactCollector, path: str, content: bytes, *, chunk: int = 7) -> None:
    """One whole, honest transfer, in several data frames."""
    collector.handle(begin(path, len(content)))
    for i in range(0, len(content), chunk):
        collector.handle(data(content[i : i + chunk]))
    collector.handle(end(len(content), hashlib.sha256(content).hexdigest()))


def reasons(collector: ArtifactCollector) -> dict[str, str]:
    return {s.path: s.reason for s in collector.skipped}


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def collector(out: Path) -> ArtifactCollector:
    return ArtifactCollector(out, MAX_COUNT, MAX_BYTES)


def test_an_honest_transfer_is_listed_and_written_privately(
    collector: ArtifactCollector, out: Path
) -> None:
    content = b"a,b\n1,2\n" * 3
    send(collector, "tables/summary.csv", content)
    collector.finish(None)

    (artifact,) = collector.artifacts
    assert artifact.path == "tables/summary.csv"
    assert artifact.size == len(content)
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()
    assert artifact.media_type == "text/csv"
    assert (out / "tables" / "summary.csv").read_bytes() == content
    assert stat.S_IMODE((out / "tables").stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "tables" / "summary.csv").stat().st_mode) == 0o600
    assert files_under(out) == ["tables", "tables/summary.csv"]
    assert collector.skipped == [] and not collector.truncated
    assert collector.total == len(content)


def test_without_a_directory_artifacts_are_checked_and_listed_only(tmp_path: Path) -> None:
    collector = ArtifactCollector(None, MAX_COUNT, MAX_BYTES)
    send(collector, "blob", b"\x00\x01")
    collector.handle(begin("bad", 2))
    collector.handle(data(b"xy"))
    collector.handle(end(2, "0" * 64))

    assert [a.path for a in collector.artifacts] == ["blob"]
    assert collector.artifacts[0].media_type == "application/octet-stream"
    assert reasons(collector) == {"bad": "size or sha256 does not match the bytes received"}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a//b", "a/./b", "x\x00y", ""])
def test_an_unsafe_name_is_skipped_and_nothing_is_written(
    collector: ArtifactCollector, out: Path, path: str
) -> None:
    send(collector, path, b"evil")
    send(collector, "fine.txt", b"ok")

    assert [a.path for a in collector.artifacts] == ["fine.txt"]
    (skipped,) = collector.skipped
    assert skipped.path == path and skipped.reason.startswith("unsafe name: ")
    assert files_under(out) == ["fine.txt"]
    assert not (out.parent / "escape.txt").exists()


def test_a_duplicate_name_keeps_the_first(collector: ArtifactCollector, out: Path) -> None:
    send(collector, "same.txt", b"first")
    send(collector, "same.txt", b"second")

    assert [a.size for a in collector.artifacts] == [5]
    assert reasons(collector) == {"same.txt": "duplicate name"}
    assert (out / "same.txt").read_bytes() == b"first"
    assert not collector.truncated


def test_the_count_cap_truncates(collector: ArtifactCollector, out: Path) -> None:
    for i in range(MAX_COUNT + 2):
        send(collector, f"f{i}.txt", b"x")

    assert [a.path for a in collector.artifacts] == [f"f{i}.txt" for i in range(MAX_COUNT)]
    assert reasons(collector) == {
        f"f{MAX_COUNT}.txt": "artifact count cap reached",
        f"f{MAX_COUNT + 1}.txt": "artifact count cap reached",
    }
    assert collector.truncated
    assert len(files_under(out)) == MAX_COUNT


def test_the_size_cap_counts_announced_bytes_against_the_total(
    collector: ArtifactCollector, out: Path
) -> None:
    send(collector, "big.bin", b"b" * 60)
    send(collector, "too-much.bin", b"t" * 41)  # 60 + 41 > 100
    send(collector, "fits.bin", b"f" * 40)  # 60 + 40 == 100

    assert [a.path for a in collector.artifacts] == ["big.bin", "fits.bin"]
    assert reasons(collector) == {"too-much.bin": "artifact size cap reached"}
    assert collector.truncated and collector.total == MAX_BYTES
    assert files_under(out) == ["big.bin", "fits.bin"]


@pytest.mark.parametrize(
    ("told_size", "told_sha"),
    [
        (5, hashlib.sha256(b"hello").hexdigest()),  # announced 5 in the end frame, sent 4
        (4, hashlib.sha256(b"hellX").hexdigest()),  # right size, wrong hash
    ],
)
def test_an_end_that_does_not_match_the_bytes_is_rejected_and_the_temp_file_removed(
    collector: ArtifactCollector, out: Path, told_size: int, told_sha: str
) -> None:
    collector.handle(begin("r.txt", 5))
    collector.handle(data(b"hell"))
    assert files_under(out) == [".r.txt.part"]  # written under a temporary name meanwhile
    collector.handle(end(told_size, told_sha))

    assert collector.artifacts == []
    assert reasons(collector) == {"r.txt": "size or sha256 does not match the bytes received"}
    assert files_under(out) == []
    assert collector.total == 0


def test_more_bytes_than_announced_is_rejected_at_once(
    collector: ArtifactCollector, out: Path
) -> None:
    content = b"0123456789"
    collector.handle(begin("long.txt", 4))
    collector.handle(data(content[:4]))
    collector.handle(data(content[4:]))
    # The rest of that transfer finds nothing open and is ignored.
    collector.handle(data(b"more"))
    collector.handle(end(len(content), hashlib.sha256(content).hexdigest()))
    send(collector, "next.txt", b"n")

    assert [a.path for a in collector.artifacts] == ["next.txt"]
    assert reasons(collector) == {"long.txt": "more bytes than announced"}
    assert files_under(out) == ["next.txt"]


@pytest.mark.parametrize("encoded", ["not base64!", "YWJ", "YW Jj"])
def test_malformed_base64_is_rejected(
    collector: ArtifactCollector, out: Path, encoded: str
) -> None:
    collector.handle(begin("b64.txt", 3))
    collector.handle(raw_data(encoded))

    assert reasons(collector) == {"b64.txt": "malformed artifact data"}
    assert files_under(out) == []
    collector.handle(end(3, hashlib.sha256(b"abc").hexdigest()))  # ignored: nothing open
    assert collector.artifacts == []


def test_a_begin_while_a_transfer_is_open_drops_the_open_one(
    collector: ArtifactCollector, out: Path
) -> None:
    collector.handle(begin("first.txt", 10))
    collector.handle(data(b"half"))
    send(collector, "second.txt", b"whole")

    assert [a.path for a in collector.artifacts] == ["second.txt"]
    assert reasons(collector) == {"first.txt": "transfer incomplete"}
    assert files_under(out) == ["second.txt"]


def test_data_or_end_without_a_begin_is_ignored(collector: ArtifactCollector, out: Path) -> None:
    collector.handle(data(b"stray"))
    collector.handle(end(5, hashlib.sha256(b"stray").hexdigest()))

    assert collector.artifacts == [] and collector.skipped == []
    assert not out.exists()


def test_finish_with_a_transfer_open_rejects_it(collector: ArtifactCollector, out: Path) -> None:
    collector.handle(begin("cut.txt", 10))
    collector.handle(data(b"part"))
    collector.finish(None)

    assert reasons(collector) == {"cut.txt": "transfer incomplete"}
    assert files_under(out) == []


def test_close_releases_a_half_written_file(collector: ArtifactCollector, out: Path) -> None:
    collector.handle(begin("cut.txt", 10))
    collector.handle(data(b"part"))
    collector.close()
    collector.close()  # idempotent

    assert reasons(collector) == {"cut.txt": "run ended"}
    assert files_under(out) == []


def test_finish_takes_the_runners_skip_list_capped_and_the_truncated_flag(
    collector: ArtifactCollector,
) -> None:
    report = ArtifactsSection(
        skipped=[
            SkippedEntry(path="p" * 400, reason="r" * 300),
            SkippedEntry(path="link", reason="symlink"),
        ]
    )
    collector.finish(report)

    assert [(len(s.path), len(s.reason)) for s in collector.skipped] == [(300, 200), (4, 7)]
    assert not collector.truncated  # no cap was named

    capped = ArtifactCollector(None, MAX_COUNT, MAX_BYTES)
    capped.finish(ArtifactsSection(skipped=[SkippedEntry(path="x", reason="file size cap")]))
    assert capped.truncated


def test_the_skip_list_is_bounded(collector: ArtifactCollector) -> None:
    for i in range(MAX_SKIPPED_LISTED + 20):
        send(collector, f"../{i}", b"x")
    assert len(collector.skipped) == MAX_SKIPPED_LISTED


def test_a_symlinked_parent_is_refused_and_nothing_is_written_through_it(
    collector: ArtifactCollector, out: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(elsewhere)

    send(collector, "sub/file.txt", b"through the link")

    assert collector.artifacts == []
    (skipped,) = collector.skipped
    assert skipped.path == "sub/file.txt"
    assert skipped.reason.startswith("cannot store: artifact parent") and "sub" in skipped.reason
    assert list(elsewhere.iterdir()) == []


def test_a_parent_that_is_a_file_is_refused(collector: ArtifactCollector, out: Path) -> None:
    out.mkdir()
    (out / "plain").write_bytes(b"a file")

    send(collector, "plain/inner.txt", b"x")

    assert reasons(collector)["plain/inner.txt"].startswith("cannot store: ")
    assert (out / "plain").read_bytes() == b"a file"


def test_an_existing_temporary_name_is_never_followed_or_reused(
    collector: ArtifactCollector, out: Path, tmp_path: Path
) -> None:
    """O_EXCL | O_NOFOLLOW: a link planted at the temporary name is an error, not a target."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"untouched")
    out.mkdir()
    os.symlink(victim, out / ".x.txt.part")

    send(collector, "x.txt", b"payload")

    assert collector.artifacts == []
    assert reasons(collector)["x.txt"].startswith("cannot store: ")
    assert victim.read_bytes() == b"untouched"
    assert not (out / "x.txt").exists()
