"""The seam between "what a run is" and "how a container runs it".

The executor core drives a `Session` through the runner protocol and never
touches Docker itself. `DockerBackend` is the real implementation; unit tests
use a backend that runs the runner as a local subprocess. A later warm pool or
another engine plugs in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ai_data_agent.executor.spec import ContainerSpec

__all__ = ["STDERR", "STDOUT", "Backend", "ExitState", "Session"]

STDOUT = 1
STDERR = 2


@dataclass(frozen=True)
class ExitState:
    exit_code: int | None
    oom_killed: bool


class Session(Protocol):
    """One started sandbox. Every method may raise `ExecutorError`."""

    @property
    def container_id(self) -> str: ...

    def send(self, data: bytes) -> None:
        """Write to the runner's stdin."""

    def close_stdin(self) -> None: ...

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        """Next chunk as (STDOUT or STDERR, data); ``(0, b"")`` at end of stream;
        None when nothing arrived within ``timeout_s``."""

    def detach_network(self) -> None:
        """Take the install network away; must be complete when this returns."""

    def kill(self) -> None: ...

    def exit_state(self, timeout_s: float) -> ExitState:
        """Wait (bounded) for the container to stop; report how it ended."""

    def remove(self) -> None:
        """Remove the container and everything it holds. Idempotent."""


class Backend(Protocol):
    def start(self, spec: ContainerSpec, run_id: str) -> Session:
        """Create, attach and start a container. On failure nothing is left behind."""

    def resolve_image(self) -> str:
        """The image sandboxes run, per the settings (may pull or fall back)."""

    def close(self) -> None:
        """Release connections. Idempotent."""
