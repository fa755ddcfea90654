"""What a session needs of the executor that makes it: settings, a sandbox, environments.

    class Executor:           # satisfies SandboxProvider
        def new_session(self, request) -> Session:
            return Session(self, request)

A session's sandbox is a run's (same image, limits, mounts, the warm pool)
with a deadline label that covers the session's lifetime; its environments
come from the environment cache, or there are none (installs per run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ai_data_agent.dataset_models import DatasetMount
from ai_data_agent.executor.env import Environments
from ai_data_agent.executor.jobs import Job
from ai_data_agent.executor.link import SandboxLink
from ai_data_agent.models import Limits
from ai_data_agent.settings import Settings

__all__ = ["SandboxOrder", "SandboxProvider"]


@dataclass(frozen=True)
class SandboxOrder:
    """A session's sandbox: its limits and image, its job and the bytes that follow the job,
    how long beyond a run's its deadline label lets it live, and its datasets."""

    run_id: str
    limits: Limits
    image: str
    job: Job
    inputs: Sequence[bytes] = ()
    lifetime_s: float = 0.0
    datasets: Sequence[DatasetMount] = ()  # pinned: mounted read-only


class SandboxProvider(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def environments(self) -> Environments | None:
        """The environment cache; None when requirements install per run (no sessions then)."""

    def resolve_image(self) -> str:
        """The image sandboxes run (resolved once)."""

    def open_sandbox(self, order: SandboxOrder) -> SandboxLink:
        """A sandbox with the order's job and inputs sent (see `driver.SandboxDriver.open`).

        Raises:
            ExecutorError: Docker or the host failed; nothing is left behind.
        """
