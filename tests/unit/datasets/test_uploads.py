"""Uploads into datasets without a daemon: the three body shapes, every refusal, the caps.

Real blob store and real SQLite records in a temporary directory; the bodies are
fed as chunks, as the route feeds them from the socket.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_data_agent.errors import RequestRejected, RequestTooLarge
from ai_data_agent.service.datasets.service import Body, DatasetService
from ai_data_agent.service.datasets.sqlite_store import DatasetStore
from ai_data_agent.settings import Settings
from ai_data_agent.storage import LocalBlobStore

TENANT = "team-a"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DatasetService]:
    settings = Settings(
        data_dir=tmp_path / "data",
        dataset_max_file_bytes=1 << 20,
        dataset_max_version_bytes=3 << 20,
        dataset_max_files=20,
        dataset_max_tenant_bytes=5 << 20,
    )
    store = DatasetStore(tmp_path / "datasets.sqlite3")
    store.open()
    yield DatasetService(settings, store, LocalBlobStore(tmp_path / "storage"))
    store.close()


def chunks(data: bytes, size: int = 7000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    return gzip.compress(raw) if compress else raw


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "target"
    return info, data if kind == tarfile.REGTYPE else None


def blobs_left(service: DatasetService) -> int:
    return service.blobs.usage()[0]


def test_one_file_is_a_version_named_by_its_hashes(service: DatasetService) -> None:
    data = b"date,units\n2024-01-01,3\n" * 100
    version = service.upload(TENANT, "sales", Body("file", chunks(data), path="sales.csv"))
    assert (version.name, version.version, version.size, version.file_count) == (
        "sales",
        1,
        len(data),
        1,
    )
    (entry,) = service.manifest(version.digest) or []
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    again = service.upload(TENANT, "sales", Body("file", chunks(data), path="sales.csv"))
    assert (again.version, again.digest) == (2, version.digest)  # same bytes, same digest
    assert blobs_left(service) == 1  # stored once


def test_a_tar_stream_compressed_or_not_keeps_its_tree(service: DatasetService) -> None:
    directory = tarfile.TarInfo("./nested")
    directory.type = tarfile.DIRTYPE
    body = tar_of(
        (directory, None), member("./a.csv", b"a"), member("nested/b.json", b"{}"), compress=True
    )
    version = service.upload(TENANT, "tree", Body("tar", chunks(body, 100)))
    assert [f.path for f in service.manifest(version.digest) or []] == ["a.csv", "nested/b.json"]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        (member("../x"), "'../x'"),
        (member("/etc/passwd"), "'/etc/passwd'"),
        (member("link", kind=tarfile.SYMTYPE), "symbolic link"),
        (member("hard", kind=tarfile.LNKTYPE), "hard link"),
        (member("dev", kind=tarfile.CHRTYPE), "character device"),
        (member("blk", kind=tarfile.BLKTYPE), "block device"),
        (member("pipe", kind=tarfile.FIFOTYPE), "FIFO"),
        (member("a/../b"), "'a/../b'"),
    ],
)
def test_a_bad_tar_entry_is_refused_by_name_and_nothing_is_kept(
    service: DatasetService, entry: tuple, says: str
) -> None:
    body = tar_of(member("good.csv", b"kept until the refusal"), entry)
    with pytest.raises(RequestRejected) as refused:
        service.upload(TENANT, "bad", Body("tar", chunks(body)))
    assert says in str(refused.value)
    assert service.records.dataset(TENANT, "bad") is None
    assert blobs_left(service) == 0  # the good file's blob went with the refusal


def test_a_duplicate_or_a_file_under_a_file_is_refused(service: DatasetService) -> None:
    for body, says in (
        (tar_of(member("a.csv"), member("./a.csv")), "given twice"),
        (tar_of(member("a"), member("a/b")), "lies under the file 'a'"),
    ):
        with pytest.raises(RequestRejected, match=says):
            service.upload(TENANT, "dup", Body("tar", chunks(body)))


def test_a_tar_bomb_stops_at_the_cap_while_it_inflates(service: DatasetService) -> None:
    huge = tarfile.TarInfo("zeros.bin")
    huge.size = 64 << 20  # 64 MiB of zeros: a few KiB compressed
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as packed:
        packed.write(huge.tobuf(format=tarfile.PAX_FORMAT))
        for _ in range(64):
            packed.write(bytes(1 << 20))
    body = buffer.getvalue()
    assert len(body) < 200_000
    with pytest.raises(RequestTooLarge, match=r"zeros\.bin.*per-file cap"):
        service.upload(TENANT, "bomb", Body("tar", chunks(body)))
    assert blobs_left(service) == 0


def test_too_many_entries_and_oversized_headers_are_refused(service: DatasetService) -> None:
    many = tar_of(*(member(f"f{i}") for i in range(25)))
    with pytest.raises(RequestTooLarge, match="more than 20 files"):
        service.upload(TENANT, "many", Body("tar", chunks(many)))
    pax = tarfile.TarInfo("p")
    pax.pax_headers = {"comment": "x" * 100_000}
    with pytest.raises(RequestRejected, match="metadata header"):
        service.upload(TENANT, "pax", Body("tar", chunks(tar_of((pax, b"")))))
    with pytest.raises(RequestRejected, match="not a readable tar"):
        service.upload(TENANT, "junk", Body("tar", chunks(b"not a tar" * 100)))


def test_caps_per_file_per_version_and_the_tenant_quota(service: DatasetService) -> None:
    with pytest.raises(RequestTooLarge, match="per-file cap"):
        service.upload(TENANT, "big", Body("file", chunks(bytes(2 << 20)), path="big.bin"))
    four = [member(f"f{i}.bin", bytes(1 << 20)) for i in range(4)]
    with pytest.raises(RequestTooLarge, match="cap of a version"):
        service.upload(TENANT, "wide", Body("tar", chunks(tar_of(*four))))
    three = tar_of(*four[:3])
    service.upload(TENANT, "one", Body("tar", chunks(three)))  # 3 MiB of the 5 MiB quota
    with pytest.raises(RequestTooLarge, match="storage quota"):
        service.upload(TENANT, "two", Body("tar", chunks(three)))
    service.upload("team-b", "two", Body("tar", chunks(three)))  # another tenant's room
    assert service.records.tenant_bytes(TENANT) == 3 << 20


def multipart(parts: list[tuple[str, str, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


def test_multipart_files_stream_part_by_part(service: DatasetService) -> None:
    body = multipart([("files", "a/x.csv", b"1,2\n" * 5000), ("files", "y.txt", b"y")])
    version = service.upload(TENANT, "parts", Body("multipart", chunks(body, 333), boundary=b"XyZ"))
    assert [(f.path, f.size) for f in service.manifest(version.digest) or []] == [
        ("a/x.csv", 20000),
        ("y.txt", 1),
    ]
    for parts, says in (
        ([("other", "z", b"z")], "'files' part"),
        ([("files", "../z", b"z")], "not normalised"),
    ):
        with pytest.raises(RequestRejected, match=says):
            service.upload(
                TENANT, "bad", Body("multipart", chunks(multipart(parts)), boundary=b"XyZ")
            )


@pytest.mark.parametrize("where", [0.4, 0.99])
def test_an_upload_cut_halfway_leaves_no_version_and_no_blob(
    service: DatasetService, where: float
) -> None:
    body = tar_of(member("whole.csv", b"w" * 5000), member("half.csv", b"h" * 9000))

    def cut() -> Iterator[bytes]:  # what the route raises when the client goes away
        yield from chunks(body[: int(len(body) * where)])
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        service.upload(TENANT, "cut", Body("tar", cut()))
    assert service.records.dataset(TENANT, "cut") is None
    assert blobs_left(service) == 0
    assert not list((service.blobs.root / "partial").iterdir())
