"""Returning the files the code left under ``outputs/``: scanned without following links, sent as frames.

    report = send_artifacts(channel, outputs, max_count=100, max_total=64 << 20)

Each file goes as ``artifact_begin`` (path, size), ``artifact_data`` (base64
chunks) and ``artifact_end`` (size, sha256); the controller checks all of it
again. Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os
import stat

from ai_data_agent.sandbox.channel import Channel

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

ARTIFACT_CHUNK = 48 * 1024  # 64 KiB of base64 per frame
MAX_SKIPPED_LISTED = 100


def _walk_entries(outputs: str) -> list[tuple[str, str]]:
    """(relative path, path) of every file and every linked directory, sorted."""
    entries = []
    for root, dirs, files in os.walk(outputs, followlinks=False):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            entries.append((os.path.relpath(path, outputs).replace(os.sep, "/"), path))
    return entries


def signatures(outputs: str) -> dict[str, tuple[int, int, int]]:
    """Every entry under ``outputs`` by relative path: (mtime ns, size, inode), links not followed."""
    found = {}
    if os.path.isdir(outputs) and not os.path.islink(outputs):
        for rel, path in _walk_entries(outputs):
            try:
                st = os.lstat(path)
            except OSError:
                continue
            found[rel] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return found


def scan_outputs(
    outputs: str, max_count: int, max_total: int, only: set[str] | None = None
) -> tuple[list[tuple[str, str, int]], list[dict[str, str]]]:
    """Regular files under ``outputs`` as (relative path, path, size), within the caps.

    Links are never followed (not even to directories); FIFOs, sockets and
    devices are skipped; a file over the remaining budget is skipped by its
    size, without reading it (a sparse 10 GB file costs nothing). With
    ``only``, just those relative paths count.
    """
    found: list[tuple[str, str, int]] = []
    skipped: list[dict[str, str]] = []
    budget = max_total
    if not os.path.isdir(outputs) or os.path.islink(outputs):
        return found, skipped
    for rel, path in _walk_entries(outputs):
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if only is not None and rel not in only:
            continue
        if not stat.S_ISREG(st.st_mode):
            kind = "symlink" if stat.S_ISLNK(st.st_mode) else "not a regular file"
            skipped.append({"path": rel, "reason": kind})
        elif len(found) >= max_count:
            skipped.append({"path": rel, "reason": "artifact count cap reached"})
        elif st.st_size > budget:
            skipped.append({"path": rel, "reason": "artifact size cap reached"})
        else:
            found.append((rel, path, st.st_size))
            budget -= st.st_size
    return found, skipped


def send_file(channel: Channel, rel: str, path: str, size: int) -> str | None:
    """Stream one file as artifact frames; the reason it was not sent, or None."""
    import base64  # only when there is something to send
    import hashlib

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot open: {exc.strerror}"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the scan
            return "not a regular file"
        channel.emit({"k": "artifact_begin", "path": rel, "size": size})
        digest = hashlib.sha256()
        length = 0
        while length < size:  # never more than the size scanned: files may grow
            chunk = fh.read(min(ARTIFACT_CHUNK, size - length))
            if not chunk:
                break
            digest.update(chunk)
            length += len(chunk)
            channel.emit({"k": "artifact_data", "d": base64.b64encode(chunk).decode()})
        channel.emit({"k": "artifact_end", "size": length, "sha256": digest.hexdigest()})
    return None


def send_artifacts(
    channel: Channel, outputs: str, max_count: int, max_total: int, only: set[str] | None = None
) -> dict[str, Any]:
    """Stream the files under ``outputs`` (or just ``only`` of them) as framed chunks."""
    found, skipped = scan_outputs(outputs, max_count, max_total, only)
    for rel, path, size in found:
        reason = send_file(channel, rel, path, size)
        if reason is not None:
            skipped.append({"path": rel, "reason": reason})
    return {"skipped": skipped[:MAX_SKIPPED_LISTED]}
