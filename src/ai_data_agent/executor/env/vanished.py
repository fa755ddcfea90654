"""What users of the environment cache see of it, and one more attempt when an environment
vanished from the volume.

    result = once_more_if_vanished(cache, attempt, run_id=run_id, step="install")

An attempt (a run, a session start) that finds its cached environment gone
from the volume (an operator's prune, a volume removed behind the index's
back) returns `Vanished`; the environment is forgotten, so the next request
installs it again, and the attempt is made once more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.env.sandboxes import InstallFailure, Ready

__all__ = ["Environments", "Vanished", "once_more_if_vanished"]

T = TypeVar("T")


class Environments(Protocol):
    """The cache as its users see it: environments to get, hold, release and forget."""

    def get_or_install(
        self, requirements: list[str], image: str, run_id: str
    ) -> Ready | InstallFailure: ...

    def hold(self, key: str) -> None: ...

    def release(self, key: str) -> None: ...

    def forget(self, key: str) -> None: ...


@dataclass(frozen=True)
class Vanished:
    """An attempt found its cached environment ``key`` gone from the volume."""

    key: str


def once_more_if_vanished(
    cache: Environments | None, attempt: Callable[[], T | Vanished], *, run_id: str, step: str
) -> T:
    """``attempt()``; when its environment vanished, forget it (so it is installed again)
    and attempt once more.

    Raises:
        ExecutorError: it vanished twice.
    """
    for retried in (False, True):
        outcome = attempt()
        if not isinstance(outcome, Vanished):
            return outcome
        if retried or cache is None:
            break
        logger.bind(run_id=run_id).warning(
            "cached environment {} is gone from the volume (or was never whole); installing again",
            outcome.key[:12],
        )
        cache.forget(outcome.key)
    raise ExecutorError("the cached environment vanished twice", run_id=run_id, step=step)
