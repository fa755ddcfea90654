"""Datasets on the real daemon and engine: streamed uploads, read-only pinned mounts,
promotion from a session, describe in a sandbox, copies on the engine.

One daemon for the module (its data dir holds the datasets); each test uses
names of its own. The 2 GiB upload is `slow`; the same path is checked here
with a smaller file and the same memory bound.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.client import Client
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration
SAMPLES = Path(__file__).parents[3] / "samples" / "data"
MAX_RSS_KB = 150 * 1024


@pytest.fixture(scope="module")
def daemon(
    settings_kwargs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daemon]:
    values = {
        **settings_kwargs,
        "max_concurrent_runs": 2,
        "install_mode": "cache",  # describe installs pyarrow once, through the cache
        "installer": "uv",
        "reaper_interval_s": 3600,
    }
    started = Daemon.start(tmp_path_factory.mktemp("datasets"), values)
    yield started
    started.stop()
    print(f"--- daemon log ({started.url}) ---\n{started.log()}")


@pytest.fixture
def client(daemon: Daemon) -> Iterator[Client]:
    with Client(daemon.url, token=daemon.token, timeout=120) as made:
        yield made


def high_water_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def sparse_file(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
        handle.seek(size // 2)
        handle.write(b"middle")
    return path


def upload_is_bounded(daemon: Daemon, client: Client, tmp_path: Path, size: int) -> None:
    big = sparse_file(tmp_path / "big.bin", size)
    version = client.datasets.put("big", big)
    assert (version.size, version.file_count) == (size, 1)
    (entry,) = client.datasets.version("big", version.version).files or []
    digest = hashlib.sha256()
    with big.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    assert entry.sha256 == digest.hexdigest()
    assert high_water_kb(daemon.pid) < MAX_RSS_KB


def test_an_upload_streams_with_the_daemons_memory_bounded(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    upload_is_bounded(daemon, client, tmp_path, 512 << 20)


@pytest.mark.slow
def test_a_2_gib_upload_streams_with_the_daemons_memory_bounded(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    upload_is_bounded(daemon, client, tmp_path, 2 << 30)


def storage_files(daemon: Daemon) -> tuple[set[str], list[str]]:
    root = daemon.data_dir / "storage"
    blobs = {p.name for p in (root / "blobs").glob("*/*")}
    partial = [p.name for p in (root / "partial").glob("*")] if (root / "partial").exists() else []
    return blobs, partial


def test_an_upload_cut_halfway_leaves_no_version_and_no_garbage(
    daemon: Daemon, client: Client
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name in ("first.bin", "second.bin"):
            info = tarfile.TarInfo(name)
            info.size = 8 << 20
            archive.addfile(info, io.BytesIO(os.urandom(8 << 20)))
    body = buffer.getvalue()
    before, _ = storage_files(daemon)
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        head = (
            f"POST /v1/datasets/cut/versions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {daemon.token}\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) * 3 // 4])  # the first file whole
    poll(  # its audit entry: refused, as the route answers a cut body
        lambda: [
            e
            for e in client.audit.page(action="dataset.put").items
            if (e.object_id, e.status) == ("cut", 400)
        ],
        timeout_s=30,
        what="the daemon to see the upload cut",
    )
    poll(
        lambda: storage_files(daemon) == (before, []),
        timeout_s=30,
        what="no blob and no partial file left",
        diagnostics=lambda: storage_files(daemon),
    )
    assert "cut" not in {d.name for d in client.datasets.list().items}


def tar_with(info: tarfile.TarInfo, data: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_bad_tars_are_refused_naming_the_entry(daemon: Daemon) -> None:
    http = daemon.client()
    dup = io.BytesIO()
    with tarfile.open(fileobj=dup, mode="w") as archive:
        for _ in range(2):
            archive.addfile(entry("twice.csv"), io.BytesIO(b""))
    cases = {
        tar_with(entry("../x")): "'../x'",
        tar_with(entry("/abs.csv")): "'/abs.csv'",
        tar_with(entry("ln", tarfile.SYMTYPE, "/etc/passwd")): "'ln'",
        tar_with(entry("dev", tarfile.CHRTYPE)): "'dev'",
        dup.getvalue(): "'twice.csv'",
    }
    for body, says in cases.items():
        answer = http.post(
            "/v1/datasets/bad/versions",
            content=body,
            headers={"Content-Type": "application/x-tar"},
        )
        assert answer.status_code == 400, answer.text
        assert says in answer.json()["error"]["message"]
    assert http.get("/v1/datasets/bad").status_code == 404


HASH_AND_WRITE = """
import hashlib, json
data = open('/data/pinned/f.txt', 'rb').read()
try:
    open('/data/pinned/new.txt', 'w')
    write = 'allowed'
except OSError as exc:
    write = exc.strerror
print(json.dumps({"sha": hashlib.sha256(data).hexdigest(), "write": write}))
"""


def test_a_mount_is_read_only_and_exactly_the_pinned_version(
    client: Client, tmp_path: Path
) -> None:
    first, second = b"version one\n", b"version two, longer\n"
    for data in (first, second):
        (tmp_path / "f.txt").write_bytes(data)
        client.datasets.put("pinned", tmp_path / "f.txt")
    for ref, expected in (("pinned@1", first), ("pinned", second)):
        result = client.run(HASH_AND_WRITE, datasets=[ref])
        assert result.status == "succeeded", result.stderr
        facts = json.loads(result.stdout)
        assert facts == {
            "sha": hashlib.sha256(expected).hexdigest(),
            "write": "Read-only file system",
        }
        (mount,) = result.datasets
        assert mount.version == (1 if ref.endswith("@1") else 2) and mount.digest
        record = client.transport.request("GET", f"/v1/runs/{result.id}").json()
        assert record["request"]["datasets"] == [mount.model_dump()]


def test_a_session_promotes_a_file_and_a_new_session_reads_it(client: Client) -> None:
    parquet = (SAMPLES / "sales.parquet").read_bytes()
    with client.session() as first:
        first.upload("outputs/clean.parquet", parquet)
        version = client.transport.request(
            "POST",
            f"/v1/sessions/{first.id}/datasets",
            json={"name": "clean", "paths": ["outputs/clean.parquet"]},
        ).json()
    assert (version["source"], version["source_id"]) == ("session", first.id)
    with client.session(datasets=["clean"]) as second:
        assert [m.name for m in second.info.datasets] == ["clean"]
        cell = second.run(
            "import hashlib; hashlib.sha256(open('/data/clean/clean.parquet','rb').read()).hexdigest()"
        )
    assert cell.result is not None
    assert hashlib.sha256(parquet).hexdigest() in cell.result.data["text/plain"]


def test_describe_runs_in_a_sandbox_and_the_daemon_never_loads_pandas_or_pyarrow(
    daemon: Daemon, client: Client
) -> None:
    client.datasets.put("tables", SAMPLES)
    described = client.datasets.describe("tables")
    files = {f.path: f for f in described.files}
    assert files["sales.csv"].rows == 600 and files["sales.parquet"].rows == 600
    for item in files.values():
        assert [c.type for c in item.columns] == ["date", "string", "string", "integer", "number"]
    assert files["sales.csv"].first_rows[0] == ["2026-03-24", "west", "gadget", 21, 21.83]
    parquet = files["sales.parquet"]
    assert parquet.first_rows[:1] == [["2026-03-24", "west", "gadget", 21, 21.83]] or any(
        "pyarrow" in note for note in parquet.notes
    )
    assert client.datasets.describe("tables").digest == described.digest  # cached
    runs = daemon.client().get("/v1/runs", params={"limit": 100}).json()["items"]
    describing = [r for r in runs if "ai_data_agent.sandbox.describe" in r["request"]["code"]]
    assert describing and describing[0]["request"]["datasets"][0]["digest"] == described.digest
    loaded = Path(f"/proc/{daemon.pid}/maps").read_text()
    assert "pyarrow" not in loaded and "pandas" not in loaded


def test_a_version_is_copied_onto_the_engine_once(
    daemon: Daemon, client: Client, tmp_path: Path
) -> None:
    unique = tmp_path / "sales.csv"  # bytes no earlier run on this engine can have copied
    unique.write_bytes((SAMPLES / "sales.csv").read_bytes() + os.urandom(8).hex().encode())
    client.datasets.put("once", unique)
    for _ in range(2):
        assert client.run(
            "print(len(open('/data/once/sales.csv').read()))", datasets=["once"]
        ).stdout
    copies = daemon.log(chars=None).count("copying dataset version")
    digest = client.datasets.version("once").digest
    assert daemon.log(chars=None).count(f"copying dataset version {digest[:12]}") == 1, copies
    started = time.monotonic()
    assert client.run("print(1)", datasets=["once"]).status == "succeeded"
    assert time.monotonic() - started < 30
