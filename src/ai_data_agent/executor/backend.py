"""The seam between "what a sandbox does" and "how a container engine runs it".

Everything above this seam (the driver, the pool, the environment cache, the
daemon, doctor) asks a `Backend`; only its implementation touches an engine.
`DockerBackend` is the real one; unit tests use backends that run the runner
as a local subprocess or play it from a script.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ai_data_agent.executor.owner import owner_is_alive, owner_is_dead
from ai_data_agent.executor.spec import (
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_OWNER,
    LABEL_RUN_ID,
    ContainerSpec,
)

__all__ = ["STDERR", "STDOUT", "Backend", "ExitState", "Sandbox", "SweepRule"]

STDOUT = 1
STDERR = 2


@dataclass(frozen=True)
class ExitState:
    exit_code: int | None
    oom_killed: bool


@dataclass(frozen=True)
class SweepRule:
    """Which labelled sandbox containers and volumes a sweep removes, from their labels alone.

    Live controllers sharing the engine (a CLI run next to a daemon) are never
    touched unless the rule says ``force``.

    Attributes:
        keep_controller: this controller's own always stay.
        all_controllers: every one whose owner is not provably alive goes
            (``sweep --all``), not only the expired and the provably orphaned.
        force: with ``all_controllers``, live owners' go too (their runs end as errors).
        run_ids: these runs' go (runs a restarted daemon knows were cut short).
    """

    keep_controller: str | None = None
    all_controllers: bool = False
    force: bool = False
    run_ids: tuple[str, ...] = ()

    def doomed(self, labels: dict[str, str], now: float) -> bool:
        if self.keep_controller and labels.get(LABEL_CONTROLLER) == self.keep_controller:
            return False
        owner = labels.get(LABEL_OWNER, "")
        if self.all_controllers and (self.force or not owner_is_alive(owner)):
            return True
        try:
            expired = float(labels.get(LABEL_DEADLINE, "0")) < now
        except ValueError:
            expired = True
        return expired or owner_is_dead(owner) or labels.get(LABEL_RUN_ID) in self.run_ids


class Sandbox(Protocol):
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

    def cpu_ns(self) -> int | None:
        """The CPU time the container has used since it started, in ns, as its cgroup
        counts it on the host (never a figure from inside); None when it cannot be read
        (it stopped, or the engine reports none). Never raises."""

    def kill(self) -> None:
        """Kill the container. Its output is not read after this: the stream is closed
        first, so that nothing still in it holds the engine (or the caller) up."""

    def exit_state(self, timeout_s: float) -> ExitState:
        """Wait (bounded) for the container to stop; report how it ended."""

    def remove(self) -> None:
        """Remove the container and everything it holds. Idempotent."""


class Backend(Protocol):
    """A container engine. Every method may raise `ExecutorError` (`DockerUnavailable`
    when the engine cannot be reached) or `ConfigurationError`."""

    def start(self, spec: ContainerSpec, run_id: str) -> Sandbox:
        """Create, attach and start a container. On failure nothing is left behind."""

    def ping(self) -> str:
        """Check that the engine answers; return its version."""

    def engine_id(self) -> str:
        """A stable id of this engine (the environment cache keeps one index per engine)."""

    def resolve_image(self) -> str:
        """The image sandboxes run, per the settings (may pull or fall back); cached."""

    def check_image(self) -> str:
        """`resolve_image`, and confirm the image is still present now (readiness)."""

    def image_id(self, image: str) -> str: ...

    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create a named volume owned by the sandbox user, unless it exists with ``labels``."""

    def remove_volume(self, name: str) -> None: ...

    def volume_labels(self, name: str) -> dict[str, str] | None:
        """A named volume's labels; None when it does not exist."""

    def fill_volume(self, name: str, labels: dict[str, str], archive: Iterable[bytes]) -> None:
        """Create a named volume and extract the tar stream ``archive`` into it (a dataset
        version's files); on failure the volume is removed."""

    def sandboxes(self, controller_id: str) -> list[str]:
        """Ids of the sandbox containers of ``controller_id`` that exist now."""

    def sweep(self, rule: SweepRule) -> list[str]:
        """Remove the leftover sandboxes and staging volumes ``rule`` dooms; return their ids."""

    def close(self) -> None:
        """Release connections. Idempotent."""
