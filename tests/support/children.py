"""Reading a `sandbox.spawn.Child` to its end in tests (what `subprocess` calls communicate)."""

from __future__ import annotations

import os
import select

from ai_data_agent.sandbox.spawn import Child

__all__ = ["read_to_end"]


def read_to_end(child: Child, timeout_s: float = 60.0) -> tuple[bytes, bytes]:
    """Everything ``child`` writes to stdout and stderr until it closes both; the pipes
    are closed then (wait for its status with `Child.wait`)."""
    out, err = bytearray(), bytearray()
    streams = {child.stdout.fileno(): out, child.stderr.fileno(): err}
    while streams:
        ready, _, _ = select.select(list(streams), [], [], timeout_s)
        assert ready, "the child wrote nothing and did not close its pipes in time"
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                streams[fd] += data
            else:
                del streams[fd]
    child.stdout.close()
    child.stderr.close()
    return bytes(out), bytes(err)
