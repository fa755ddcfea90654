"""Dataset volumes on Docker: filled once from a tar stream, then mounted read-only.

    fill_volume(api, "ai-data-agent-data-9f86...", {"ai-data-agent.dataset": digest}, chunks, image)
    volume_labels(api, name)          # its labels, or None when there is no such volume

A new volume is filled through the engine's archive endpoint (``PUT
/containers/{id}/archive``, what ``docker cp`` uses) into a container that is
created for it and never started: no process runs, so nothing but the
engine's own tar extraction touches the bytes, and the stream goes straight
from the blobs to the engine's disk, chunk by chunk. The container is removed
in every path; a fill that fails removes the volume too, so nothing
half-filled is left to mount.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import docker.errors
from docker.types import LogConfig, Mount
from loguru import logger

from ai_data_agent.errors import AiDataAgentError, ExecutorError
from ai_data_agent.executor.docker.sandbox import DOCKER_ERRORS
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import LABEL_DEADLINE, LABEL_MANAGED, LABEL_OWNER

__all__ = ["fill_volume", "volume_labels"]

TARGET = "/dataset"
FILL_LIFETIME_S = 6 * 3600  # a sweep takes the helper after this, if we die mid-fill


def volume_labels(api: Any, name: str) -> dict[str, str] | None:
    """The volume's labels; None when it does not exist.

    Raises:
        ExecutorError: the engine did not answer.
    """
    try:
        info = api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    except DOCKER_ERRORS as exc:
        raise ExecutorError(f"cannot inspect volume {name}: {exc}", step="dataset") from exc
    return dict(info.get("Labels") or {})


def _helper(api: Any, name: str, image: str) -> str:
    host_config = api.create_host_config(
        mounts=[Mount(TARGET, name, type="volume")],
        network_mode="none",
        read_only=True,
        cap_drop=["ALL"],
        log_config=LogConfig(type="none"),
    )
    labels = {
        LABEL_MANAGED: "true",
        LABEL_OWNER: owner_label(),
        LABEL_DEADLINE: str(int(time.time()) + FILL_LIFETIME_S),
    }
    created = api.create_container(
        image,
        command=["true"],  # never started
        host_config=host_config,
        labels=labels,
        network_disabled=True,
        use_config_proxy=False,
    )
    return str(created["Id"])


def fill_volume(
    api: Any, name: str, labels: dict[str, str], chunks: Iterable[bytes], image: str
) -> None:
    """Create volume ``name`` with ``labels`` and extract the tar ``chunks`` into it.

    Raises:
        ExecutorError: the engine failed, or ``chunks`` raised it (a blob that is not
            its hash); the volume is removed then.
    """
    helper: str | None = None
    try:
        api.create_volume(name, labels=labels)
        helper = _helper(api, name, image)
        if not api.put_archive(helper, TARGET, chunks):
            raise ExecutorError(f"the engine did not take the files of {name}", step="dataset")
    except BaseException as exc:
        _remove(api, helper, name)
        if isinstance(exc, DOCKER_ERRORS):
            raise ExecutorError(f"cannot fill volume {name}: {exc}", step="dataset") from exc
        raise
    _remove(api, helper, None)


def _remove(api: Any, helper: str | None, volume: str | None) -> None:
    """Remove the helper (and the volume); log, never raise: the first error counts."""
    try:
        if helper is not None:
            api.remove_container(helper, force=True)
        if volume is not None:
            api.remove_volume(volume, force=True)
    except docker.errors.NotFound:
        pass
    except (*DOCKER_ERRORS, AiDataAgentError) as exc:
        logger.warning("cannot remove what a dataset fill left ({}): {}", volume or helper, exc)
