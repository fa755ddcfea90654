"""What the daemon needs from the executor and the engine, as protocols.

The daemon drives an `Executor` (or anything with its ``run`` signature and a
``controller_id``) and asks the engine three things besides runs: is it there
(``ping``), which image do sandboxes use (``resolve_image``), and remove
leftovers (``sweep``). `DockerServiceBackend` answers them for the real
`DockerBackend`; unit tests pass a fake executor whose ``backend`` has them::

    executor = Executor(settings)
    backend = service_backend_for(executor)      # DockerServiceBackend
    backend.ping(); backend.resolve_image(); backend.sweep(all_controllers=True)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from ai_data_agent.executor import RunEvent
from ai_data_agent.executor.docker_backend import DockerBackend
from ai_data_agent.models import RunRequest, RunResult

__all__ = ["DockerServiceBackend", "RunExecutor", "ServiceBackend", "service_backend_for"]


class RunExecutor(Protocol):
    """The part of `Executor` the daemon uses (blocking, thread-safe ``run``)."""

    @property
    def controller_id(self) -> str: ...

    @property
    def backend(self) -> object: ...

    def run(
        self,
        request: RunRequest,
        *,
        run_id: str | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        cancel: threading.Event | None = None,
        artifacts_dir: Path | None = None,
    ) -> RunResult: ...


@runtime_checkable
class ServiceBackend(Protocol):
    """Engine operations besides runs. Every method is blocking and may raise anything:
    the daemon turns failures into readiness reasons or log lines."""

    def ping(self) -> None:
        """Raise unless the engine answers."""

    def resolve_image(self) -> str:
        """The sandbox image, present on the engine now."""

    def sweep(
        self,
        *,
        keep_controller: str | None = None,
        all_controllers: bool = False,
        run_ids: tuple[str, ...] = (),
    ) -> list[str]:
        """Remove leftover sandboxes: expired, of dead controllers, of ``run_ids`` (or all)."""


class DockerServiceBackend:
    """`ServiceBackend` for the executor's `DockerBackend` (same client, same image cache)."""

    def __init__(self, backend: DockerBackend) -> None:
        self._backend = backend

    def ping(self) -> None:
        self._backend.client.ping()

    def resolve_image(self) -> str:
        image = self._backend.resolve_image()
        # resolve_image caches its answer; make sure nobody removed the image since.
        self._backend.client.api.inspect_image(image)
        return image

    def sweep(
        self,
        *,
        keep_controller: str | None = None,
        all_controllers: bool = False,
        run_ids: tuple[str, ...] = (),
    ) -> list[str]:
        return self._backend.sweep(
            keep_controller=keep_controller, all_controllers=all_controllers, run_ids=run_ids
        )


def service_backend_for(executor: RunExecutor) -> ServiceBackend:
    """The engine operations that belong with ``executor``.

    Raises:
        TypeError: its backend is neither a `DockerBackend` nor a `ServiceBackend`.
    """
    backend = executor.backend
    if isinstance(backend, DockerBackend):
        return DockerServiceBackend(backend)
    if isinstance(backend, ServiceBackend):
        return backend
    raise TypeError(
        f"executor.backend ({type(backend).__name__}) must be a DockerBackend or provide "
        "ping(), resolve_image() and sweep()"
    )
