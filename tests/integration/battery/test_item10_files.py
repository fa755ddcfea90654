"""Item 10: files across the boundary.

Inputs: ``..``, absolute paths, NUL, 4 KB names, 100,000 files and over-size
content are refused while the request is validated, before any container
exists, and quickly; an archive bomb is an opaque input the controller never
unpacks (its memory stays bounded) and unpacks inside the sandbox only as far
as the sandbox's /tmp allows. Outputs: symlinks, FIFOs, device links and a
10 GB sparse file are never followed or read.
"""

from __future__ import annotations

import base64
import io
import os
import time
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from ai_data_agent import RunRequest
from ai_data_agent.errors import RequestTooLarge
from ai_data_agent.models import InputFile

from .conftest import Battery

pytestmark = pytest.mark.integration

MiB = 1024 * 1024

BAD_PATHS = [
    "../escape.txt",
    "data/../../escape.txt",
    "/etc/passwd",
    "data/\x00.csv",
    "nul\x00",
    "a" * 4096,
    "d/" + "b" * 300,
    "back\\slash",
    "..",
    "main.py",
    "line\nbreak",
]


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


@pytest.mark.parametrize("path", BAD_PATHS, ids=lambda p: repr(p)[:40])
def test_bad_input_paths_are_refused_at_validation(battery: Battery, path: str) -> None:
    with pytest.raises(ValidationError):
        RunRequest(code="print(1)", files=[InputFile.from_bytes(path, b"x")])
    assert battery.container_ids() == set()


def test_a_hundred_thousand_files_are_refused_quickly_before_any_container(
    battery: Battery,
) -> None:
    started = time.monotonic()
    encoded = base64.b64encode(b"x").decode()
    files = [{"path": f"f/{i}.txt", "content_b64": encoded} for i in range(100_000)]
    request = RunRequest.model_validate({"code": "print(1)", "files": files})

    with pytest.raises(RequestTooLarge) as excinfo:
        battery.executor().run(request, run_id=battery.new_run_id())

    assert excinfo.value.field == "files"
    assert time.monotonic() - started < 20
    assert battery.container_ids() == set()


def test_over_size_content_is_refused_before_any_container(battery: Battery) -> None:
    cap = battery.settings.max_input_file_bytes
    request = RunRequest(
        code="print(1)", files=[InputFile.from_bytes("big.bin", b"\0" * (cap + 1))]
    )

    with pytest.raises(RequestTooLarge, match=r"big\.bin"):
        battery.executor().run(request, run_id=battery.new_run_id())

    assert battery.container_ids() == set()


def zip_bomb(uncompressed: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("zeros.bin", "w", force_zip64=True) as member:
            chunk = b"\0" * MiB
            for _ in range(uncompressed // MiB):
                member.write(chunk)
    return buffer.getvalue()


def test_an_archive_bomb_cannot_exhaust_the_controller(battery: Battery) -> None:
    bomb = zip_bomb(1024 * MiB)  # 1 GiB of zeros in about 1 MB
    assert len(bomb) < 2 * MiB
    unpack = (
        "import zipfile\n"
        "try:\n"
        "    zipfile.ZipFile('inputs/bomb.zip').extractall('/tmp/out')\n"
        "except OSError as exc:\n"
        "    print('stopped:', exc.strerror)\n"
    )
    rss_before = status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")

    outcome = battery.run(unpack, files=[InputFile.from_bytes("inputs/bomb.zip", bomb)])

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "stopped: No space left on device\n"
    assert (status_kib("VmHWM") - rss_before) * 1024 < 100 * MiB
    battery.assert_host_unchanged()


def test_hostile_outputs_are_never_followed_or_read(battery: Battery, tmp_path: Path) -> None:
    code = r"""
import os
os.makedirs("outputs/sub", exist_ok=True)
os.symlink("/etc/passwd", "outputs/passwd")
os.symlink("/proc/1/environ", "outputs/environ")
os.symlink("/dev/zero", "outputs/zero")
os.symlink("/", "outputs/root")
os.symlink("..", "outputs/sub/up")
os.mkfifo("outputs/fifo")
try:
    os.mknod("outputs/null", 0o666 | 0o020000, os.makedev(1, 3))
except OSError as exc:
    print("mknod:", exc.strerror)
with open("outputs/sparse.bin", "wb") as fh:
    fh.truncate(10 << 30)
with open("outputs/fine.txt", "w") as fh:
    fh.write("fine")
"""
    artifacts = tmp_path / "artifacts"
    started = time.monotonic()

    outcome = battery.run(code, artifacts_dir=artifacts)

    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr)
    assert time.monotonic() - started < 15  # the sparse file was not read
    assert [a.path for a in result.artifacts] == ["fine.txt"]
    skipped = {s.path: s.reason for s in result.artifacts_skipped}
    for name in ("passwd", "environ", "zero", "root", "sub/up"):
        assert skipped.get(name) == "symlink", (name, skipped)
    assert skipped.get("fifo") == "not a regular file", skipped
    assert "size cap" in skipped.get("sparse.bin", ""), skipped
    assert "null" not in {a.path for a in result.artifacts}
    on_disk = sorted(str(p.relative_to(artifacts)) for p in artifacts.rglob("*"))
    assert on_disk == ["fine.txt"], on_disk
    assert not any(p.is_symlink() for p in artifacts.rglob("*"))
    assert (artifacts / "fine.txt").read_text() == "fine"
    battery.assert_host_unchanged()


def test_benign_twin_inputs_in_and_artifacts_out(battery: Battery, tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    code = (
        "import hashlib, shutil\n"
        "shutil.copy('data/in.bin', 'outputs/out.bin')\n"
        "print(hashlib.sha256(open('data/in.bin', 'rb').read()).hexdigest())\n"
    )

    outcome = battery.run(
        code, files=[InputFile.from_bytes("data/in.bin", data)], artifacts_dir=tmp_path
    )

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert (tmp_path / "out.bin").read_bytes() == data
    battery.assert_host_unchanged()
