"""Start writing a file's bytes to disk while more of them arrive.

    early = EarlyWriteback(fd)
    if early.due(total_bytes):      # after each write: past every `STEP_BYTES`...
        file.flush()
        early.written(total_bytes)  # ...the new range goes to the disk now, in the background
    os.fsync(fd)                    # then waits only for what is still on its way

A durable blob is fsynced before it is visible. Left to itself, the kernel
starts writing a file's dirty pages only once they pass a share of memory
(gigabytes on a large machine) or after 30 s, so the whole upload would wait
for the disk only at that fsync: the upload's time would be the stream's plus
the disk's. With ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` every few MiB the
disk writes while the stream goes on, the fsync finds little left, and dirty
pages never pile up. On a system without the call (not Linux) nothing changes.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

__all__ = ["STEP_BYTES", "EarlyWriteback"]

STEP_BYTES = 8 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    """libc's ``sync_file_range``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: a daemon that stores no blob never loads it
    import ctypes.util

    try:
        function = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


class EarlyWriteback:
    """Starts the disk write of a file's new bytes every `STEP_BYTES` (see the module)."""

    def __init__(self, fd: int, step_bytes: int = STEP_BYTES) -> None:
        self.fd = fd
        self.step = step_bytes
        self.started = 0  # bytes whose write was started
        self._call = _sync_file_range()

    def due(self, total: int) -> bool:
        """Whether a file of ``total`` bytes has a step to start (flush it first)."""
        return self._call is not None and total - self.started >= self.step

    def written(self, total: int) -> None:
        """Start writing bytes up to ``total``, which the kernel holds (flushed)."""
        if not self.due(total):
            return
        if self._call(self.fd, self.started, total - self.started, SYNC_FILE_RANGE_WRITE) != 0:
            self._call = None  # a file system that refuses it: the fsync does it all
            return
        self.started = total
