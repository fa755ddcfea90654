"""Receiving artifacts from a sandbox: every name, size and hash checked on the host.

The runner streams each file under ``outputs/`` as ``artifact_begin`` (path,
size), ``artifact_data`` (base64 chunks) and ``artifact_end`` (size, sha256).
`ArtifactCollector` trusts none of it: the path must pass the one path rule,
the bytes it counts itself must match the announced size and caps, and the
sha256 it computes must match. Accepted files are written, when a directory is
given, with ``O_EXCL | O_NOFOLLOW`` under directories it created itself, via a
temporary name that is renamed only once the hash is verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
from pathlib import Path
from typing import BinaryIO

from ai_data_agent.executor.frames import ArtifactBegin, ArtifactData, ArtifactEnd, ArtifactsSection
from ai_data_agent.models import Artifact, SkippedArtifact
from ai_data_agent.paths import check_relative_path

__all__ = ["ArtifactCollector"]

MAX_SKIPPED_LISTED = 100


def media_type_for(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or "application/octet-stream"


class ArtifactCollector:
    """Consumes artifact frames for one run; bounded by count and total bytes."""

    def __init__(self, directory: Path | None, max_count: int, max_total_bytes: int) -> None:
        self.directory = directory
        self.max_count = max_count
        self.max_total_bytes = max_total_bytes
        self.artifacts: list[Artifact] = []
        self.skipped: list[SkippedArtifact] = []
        self.truncated = False
        self.total = 0
        self._path: str | None = None
        self._declared = 0
        self._received = 0
        self._digest = hashlib.sha256()
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None

    # -- frames -------------------------------------------------------------------
    def handle(self, frame: ArtifactBegin | ArtifactData | ArtifactEnd) -> None:
        if isinstance(frame, ArtifactBegin):
            self._begin(frame.path, frame.size)
        elif self._path is None:
            return  # data or end without a begin that was accepted: nothing to add to
        elif isinstance(frame, ArtifactData):
            self._data(frame.data)
        else:
            self._end(frame.size, frame.sha256)

    def finish(self, runner_report: ArtifactsSection | None) -> None:
        """End of the run: drop a half-received file; take the runner's skip list."""
        if self._path is not None:
            self._reject("transfer incomplete")
        for item in runner_report.skipped if runner_report is not None else []:
            self._skip(item.path[:300], item.reason[:200])
        if any("cap" in s.reason for s in self.skipped):
            self.truncated = True

    # -- steps --------------------------------------------------------------------
    def _begin(self, path: str, size: int) -> None:
        if self._path is not None:
            self._reject("transfer incomplete")
        try:
            check_relative_path(path)
        except ValueError as exc:
            self._skip(path[:300], f"unsafe name: {exc}")
            return
        if len(self.artifacts) >= self.max_count:
            self.truncated = True
            self._skip(path, "artifact count cap reached")
            return
        if any(a.path == path for a in self.artifacts):
            self._skip(path, "duplicate name")
            return
        if self.total + size > self.max_total_bytes:
            self.truncated = True
            self._skip(path, "artifact size cap reached")
            return
        self._path, self._declared, self._received = path, size, 0
        self._digest = hashlib.sha256()
        if self.directory is not None:
            try:
                self._open(path)
            except (OSError, ValueError) as exc:
                self._reject(f"cannot store: {exc}")

    def _open(self, path: str) -> None:
        assert self.directory is not None
        target = self.directory / path
        parent = target.parent
        # Create the parents one by one without following links; only this
        # process writes under `directory`, so an existing link is an error.
        current = self.directory
        current.mkdir(mode=0o700, parents=True, exist_ok=True)
        for part in parent.relative_to(self.directory).parts:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                raise ValueError(f"artifact parent {current} is not a directory")
            current.mkdir(mode=0o700, exist_ok=True)
        self._tmp = parent / f".{target.name}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        self._file = os.fdopen(os.open(self._tmp, flags, 0o600), "wb")

    def _data(self, encoded: str) -> None:
        try:
            chunk = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            self._reject("malformed artifact data")
            return
        self._received += len(chunk)
        if self._received > self._declared:
            self._reject("more bytes than announced")
            return
        self._digest.update(chunk)
        if self._file is not None:
            self._file.write(chunk)

    def _end(self, size: int, sha256: str) -> None:
        path = self._path
        assert path is not None
        if size != self._received or sha256 != self._digest.hexdigest():
            self._reject("size or sha256 does not match the bytes received")
            return
        self._close()
        if self._tmp is not None and self.directory is not None:
            os.replace(self._tmp, self.directory / path)
            self._tmp = None
        self.total += self._received
        digest = self._digest.hexdigest()
        media_type = media_type_for(path)
        self.artifacts.append(
            Artifact(path=path, size=self._received, sha256=digest, media_type=media_type)
        )
        self._path = None

    def _reject(self, reason: str) -> None:
        self._skip(self._path or "?", reason)
        self._close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._path = None

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _skip(self, path: str, reason: str) -> None:
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedArtifact(path=path, reason=reason))

    def close(self) -> None:
        """Release a half-written file (error paths)."""
        if self._path is not None:
            self._reject("run ended")
