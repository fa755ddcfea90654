"""Named volumes on Docker that sandboxes (uid 1000) can write: the environment cache and staging.

    ensure_volume(api, "ai-data-agent-envs", {"ai-data-agent.cache": "true"}, image, "runc")
    remove_volume(api, "ai-data-agent-stage-1a2b")

A new volume's root belongs to root; a one-shot container that runs only our
code (root with CAP_CHOWN alone, no network, read-only, the sandboxes' seccomp
profile) hands it over to the sandbox user. Docker errors become `ExecutorError` (step ``volume``).
"""

from __future__ import annotations

import time
from typing import Any

import docker.errors
from docker.types import LogConfig, Mount
from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.docker.sandbox import DOCKER_ERRORS
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import (
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    SANDBOX_USER,
    sandbox_security_opt,
)

__all__ = ["ensure_volume", "remove_volume"]

SANDBOX_UID = int(SANDBOX_USER.split(":")[0])
HELPER_LIFETIME_S = 300


def _existing(api: Any, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    except DOCKER_ERRORS as exc:
        raise ExecutorError(f"cannot inspect volume {name}: {exc}", step="volume") from exc
    return found


def _chown_to_sandbox_user(api: Any, name: str, image: str, runtime: str) -> None:
    host_config = api.create_host_config(
        mounts=[Mount("/v", name, type="volume")],
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        cap_add=["CHOWN"],
        security_opt=list(sandbox_security_opt()),
        log_config=LogConfig(type="none"),
        pids_limit=16,
        mem_limit=64 * 1024 * 1024,
        runtime=runtime,
    )
    chown = f"import os; os.chown('/v', {SANDBOX_UID}, {SANDBOX_UID})"
    labels = {
        LABEL_MANAGED: "true",
        LABEL_OWNER: owner_label(),
        LABEL_DEADLINE: str(int(time.time()) + HELPER_LIFETIME_S),
    }
    container_id = api.create_container(
        image,
        command=["python3", "-I", "-c", chown],
        user="0:0",
        host_config=host_config,
        labels=labels,
        use_config_proxy=False,
    )["Id"]
    try:
        api.start(container_id)
        status = api.wait(container_id, timeout=60).get("StatusCode")
        if status != 0:
            raise ExecutorError(
                f"cannot prepare volume {name}: chown exited {status}", step="volume"
            )
    finally:
        try:
            api.remove_container(container_id, force=True)
        except DOCKER_ERRORS as exc:
            logger.warning("cannot remove volume helper {}: {}", container_id[:12], exc)


def ensure_volume(api: Any, name: str, labels: dict[str, str], image: str, runtime: str) -> None:
    """Create the named volume if needed, owned by the sandbox user.

    A volume with our labels is taken as ready. One without them (made by
    Docker itself when a container mounted it first: root-owned) is replaced.

    Raises:
        ExecutorError: the volume cannot be inspected, replaced or prepared.
    """
    existing = _existing(api, name)
    if existing is not None and (existing.get("Labels") or {}).items() >= labels.items():
        return
    if existing is not None:
        try:
            api.remove_volume(name)
        except DOCKER_ERRORS as exc:
            raise ExecutorError(
                f"volume {name} exists without our labels and cannot be replaced (in use?): {exc}",
                step="volume",
            ) from exc
    try:
        api.create_volume(name, labels=labels)
        _chown_to_sandbox_user(api, name, image, runtime)
    except (*DOCKER_ERRORS, ExecutorError) as exc:
        # A volume left root-owned would look ready next time: take it away.
        try:
            api.remove_volume(name, force=True)
        except DOCKER_ERRORS:
            pass
        if isinstance(exc, ExecutorError):
            raise
        raise ExecutorError(f"cannot prepare volume {name}: {exc}", step="volume") from exc


def remove_volume(api: Any, name: str) -> None:
    """Remove the volume (gone already is fine).

    Raises:
        ExecutorError: it exists and cannot be removed (in use?).
    """
    try:
        api.remove_volume(name, force=True)
    except docker.errors.NotFound:
        pass
    except DOCKER_ERRORS as exc:
        raise ExecutorError(f"cannot remove volume {name}: {exc}", step="volume") from exc
