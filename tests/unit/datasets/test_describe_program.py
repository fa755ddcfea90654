"""The describe program (`sandbox.describe`, `sandbox.parquet`) run on the host over files it
makes, and the tar stream that fills a version's volume (`executor.data.archive`)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from ai_data_agent.dataset_models import DatasetFile, DatasetMount
from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.data import archive
from ai_data_agent.sandbox import describe, parquet

SAMPLES = Path(__file__).parents[3] / "samples" / "data"


def described(root: Path, capsys: pytest.CaptureFixture[str], most: int = 200_000) -> Any:
    describe.main(str(root), most)
    return json.loads(capsys.readouterr().out)


def test_csv_tsv_jsonl_and_parquet_are_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sales.csv").write_bytes((SAMPLES / "sales.csv").read_bytes())
    (tmp_path / "sales.parquet").write_bytes((SAMPLES / "sales.parquet").read_bytes())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "t.tsv").write_text("x\ty\n1\ttrue\n\n2\tfalse\n")
    (tmp_path / "sub" / "e.jsonl").write_text('{"a": 1, "b": "x"}\n\n{"a": 2.5, "c": [1]}\n')
    (tmp_path / "notes.txt").write_text("not tabular")
    found = described(tmp_path, capsys)
    files = {f["path"]: f for f in found["files"]}
    assert found["other_files"] == 1 and not found["truncated"]
    csv = files["sales.csv"]
    assert csv["rows"] == 600
    assert [(c["name"], c["type"]) for c in csv["columns"]] == [
        ("date", "date"),
        ("region", "string"),
        ("product", "string"),
        ("units", "integer"),
        ("unit_price", "number"),
    ]
    assert csv["first_rows"][0] == ["2026-03-24", "west", "gadget", 21, 21.83]
    pq = files["sales.parquet"]
    assert (pq["rows"], [c["type"] for c in pq["columns"]]) == (
        600,
        ["date", "string", "string", "integer", "number"],
    )
    assert pq["notes"] == ["first rows need pyarrow, which this sandbox does not have"]
    assert files["sub/t.tsv"]["rows"] == 2  # the blank line is no row
    assert files["sub/t.tsv"]["first_rows"] == [[1, True], [2, False]]
    jsonl = files["sub/e.jsonl"]
    assert jsonl["rows"] == 2
    assert [(c["name"], c["type"]) for c in jsonl["columns"]] == [
        ("a", "number"),
        ("b", "string"),
        ("c", "array"),
    ]


def test_quoted_line_breaks_are_one_row_and_bad_files_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "q.csv").write_text('id,text\n1,"two\nlines"\n2,plain\n')
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    files = {f["path"]: f for f in described(tmp_path, capsys)["files"]}
    assert files["q.csv"]["rows"] == 2
    assert "not a parquet file" in files["broken.parquet"]["error"]
    assert "not a JSON object" in files["bad.jsonl"]["error"]


def test_the_output_fits_its_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(10):
        (tmp_path / f"f{i}.csv").write_text("a\n" + ("x" * 150 + "\n") * 10)
    found = described(tmp_path, capsys, most=3000)
    assert found["truncated"] and len(json.dumps(found)) <= 3000


def test_the_parquet_footer_reader_reads_the_schema_tree() -> None:
    columns, rows = parquet.read_footer(str(SAMPLES / "sales.parquet"))
    assert rows == 600 and [name for name, _ in columns][:2] == ["date", "region"]
    nested = [
        {4: b"schema", 5: 2},
        {4: b"point", 5: 2},
        {4: b"x", 1: 5},
        {4: b"y", 1: 5},
        {4: b"label", 1: 6, 6: 0},
    ]
    assert parquet._leaves(nested) == [
        ("point.x", "number"),
        ("point.y", "number"),
        ("label", "string"),
    ]


class Blobs:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def open_blob(self, digest: str) -> BinaryIO:
        if digest not in self.blobs:
            raise FileNotFoundError(digest)
        return io.BytesIO(self.blobs[digest])


def entry(path: str, data: bytes) -> DatasetFile:
    return DatasetFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_a_version_streams_as_a_read_only_tar_and_a_bad_blob_stops_it() -> None:
    files = [entry("b/c.csv", b"c" * 1000), entry("a.csv", b"a")]
    blobs = Blobs({f.sha256: (b"c" * 1000 if f.path == "b/c.csv" else b"a") for f in files})
    data = b"".join(archive(files, blobs))
    with tarfile.open(fileobj=io.BytesIO(data)) as read:
        members = {m.name: m for m in read.getmembers()}
        assert set(members) == {"b", "a.csv", "b/c.csv"}
        assert members["b"].mode == 0o555 and members["a.csv"].mode == 0o444
        handle = read.extractfile("b/c.csv")
        assert handle is not None and handle.read() == b"c" * 1000
    blobs.blobs[files[1].sha256] = b"b"  # same size, other bytes
    with pytest.raises(ExecutorError, match="not the file the manifest names"):
        b"".join(archive(files, blobs))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sales", ("sales", None, "/data/sales")),
        ("sales@3", ("sales", 3, "/data/sales")),
        ({"name": "s", "path": "/mnt/s"}, ("s", None, "/mnt/s")),
    ],
)
def test_mounts_read_as_names_pins_or_objects(given: object, expected: tuple) -> None:
    from ai_data_agent.models import RunRequest

    (mount,) = RunRequest.model_validate({"code": "", "datasets": [given]}).datasets
    assert (mount.name, mount.version, mount.target) == expected


@pytest.mark.parametrize(
    "bad",
    [
        ["../x"],
        ["a@b"],
        [{"name": "a", "path": "/etc"}],
        [{"name": "a", "path": "/data/../x"}],
        ["a", {"name": "b", "path": "/data/a/b"}],
        ["a", "a"],
        [f"d{i}" for i in range(17)],
    ],
)
def test_bad_mounts_are_refused(bad: list[object]) -> None:
    from pydantic import ValidationError

    from ai_data_agent.models import RunRequest

    with pytest.raises(ValidationError):
        RunRequest.model_validate({"code": "", "datasets": bad})
    assert DatasetMount(name="ok").target == "/data/ok"
