"""Data in, results out, against real sandboxes: input files, artifacts, figures."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_data_agent import Executor, RunRequest, RunStatus, Settings
from ai_data_agent.models import InputFile

pytestmark = pytest.mark.integration

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def decode_png(data: bytes) -> tuple[int, int]:
    """Check a PNG completely with the standard library; return (width, height).

    Every chunk's CRC, the header, and the image data: it must inflate to exactly
    one filter byte plus one row of pixels per row, with valid filter types.
    """
    assert data.startswith(PNG_SIGNATURE), "no PNG signature"
    pos, idat, header = len(PNG_SIGNATURE), b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert interlace == 0 and depth == 8
    stride = width * CHANNELS[colour]
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + stride)
    assert all(raw[row * (1 + stride)] <= 4 for row in range(height)), "bad filter type"
    return width, height


@pytest.fixture
def executor(make_settings: Callable[..., Settings]) -> Executor:
    return Executor(make_settings(install_mode="cache", installer="uv"))


def test_uploaded_csv_is_read_and_a_summary_comes_back(executor: Executor, tmp_path: Path) -> None:
    code = (
        "import csv\n"
        "rows = list(csv.DictReader(open('data/sales.csv')))\n"
        "total = sum(int(r['units']) for r in rows)\n"
        "with open('outputs/summary.csv', 'w') as f:\n"
        "    f.write('rows,units\\n%d,%d\\n' % (len(rows), total))\n"
        "print(len(rows), total)\n"
    )
    csv_bytes = b"region,units\nnorth,3\nsouth,4\n"
    out = tmp_path / "out"

    result = executor.run(
        RunRequest(code=code, files=[InputFile.from_bytes("data/sales.csv", csv_bytes)]),
        artifacts_dir=out,
    )

    assert result.status == RunStatus.SUCCEEDED, (result.error, result.stderr)
    assert result.stdout == "2 7\n"
    [artifact] = result.artifacts
    stored = (out / "summary.csv").read_bytes()
    assert stored == b"rows,units\n2,7\n"
    assert (artifact.path, artifact.size, artifact.media_type) == ("summary.csv", 15, "text/csv")
    assert artifact.sha256 == hashlib.sha256(stored).hexdigest()


def test_matplotlib_figure_left_open_comes_back_as_a_png(
    executor: Executor, tmp_path: Path
) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [2, 0, 1])\n"
        "plt.title('left open')\n"
        "plt.show()\n"
    )

    result = executor.run(
        RunRequest(code=code, requirements=["matplotlib"]), artifacts_dir=tmp_path
    )

    assert result.status == RunStatus.SUCCEEDED, (result.error, result.stderr[-2000:])
    [figure] = result.artifacts
    assert figure.path == "figure_1.png" and figure.media_type == "image/png"
    width, height = decode_png((tmp_path / "figure_1.png").read_bytes())
    assert (width, height) == (640, 480)  # matplotlib's default 6.4 x 4.8 in at 100 dpi


def test_links_fifos_and_sparse_giants_are_never_returned(
    executor: Executor, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'outputs/leak')\n"
        "os.symlink('/etc', 'outputs/etc-dir')\n"
        "os.mkfifo('outputs/fifo')\n"
        "with open('outputs/sparse.bin', 'wb') as f:\n"
        "    f.truncate(10 * 1024 ** 3)\n"
        "open('outputs/ok.txt', 'w').write('fine')\n"
    )

    result = executor.run(RunRequest(code=code), artifacts_dir=tmp_path)

    assert result.status == RunStatus.SUCCEEDED, result.stderr
    assert [a.path for a in result.artifacts] == ["ok.txt"]
    skipped = {s.path: s.reason for s in result.artifacts_skipped}
    assert skipped == {
        "leak": "symlink",
        "etc-dir": "symlink",
        "fifo": "not a regular file",
        "sparse.bin": "artifact size cap reached",
    }
    assert result.artifacts_truncated is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.txt"]


def test_artifact_caps_are_reported(make_settings: Callable[..., Settings]) -> None:
    executor = Executor(make_settings(max_artifacts=2))
    code = "for i in range(4):\n    open(f'outputs/f{i}.txt', 'w').write(str(i))\n"

    result = executor.run(RunRequest(code=code))

    assert [a.path for a in result.artifacts] == ["f0.txt", "f1.txt"]
    assert result.artifacts_truncated is True
    assert {s.reason for s in result.artifacts_skipped} == {"artifact count cap reached"}
