"""Removing what crashed controllers leave on the engine: sandbox containers and staging volumes.

    removed = sweep(api, SweepRule(keep_controller=my_id, run_ids=cut_short))

Everything we create carries labels (`spec`): managed, run id, controller,
owner process, deadline; `backend.SweepRule` decides from those alone.
"""

from __future__ import annotations

import time
from typing import Any

import docker.errors
from loguru import logger

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.executor.docker.sandbox import DOCKER_ERRORS
from ai_data_agent.executor.spec import LABEL_MANAGED

__all__ = ["sweep"]


def _containers(api: Any, rule: SweepRule, now: float) -> list[str]:
    try:
        containers = api.containers(all=True, filters={"label": LABEL_MANAGED})
    except DOCKER_ERRORS as exc:
        raise ExecutorError(f"cannot list sandbox containers: {exc}", step="sweep") from exc
    removed = []
    for info in containers:
        if not rule.doomed(info.get("Labels") or {}, now):
            continue
        try:
            api.remove_container(info["Id"], force=True, v=True)
            removed.append(info["Id"])
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as exc:
            logger.warning("sweep: cannot remove {}: {}", info["Id"][:12], exc)
    return removed


def _volumes(api: Any, rule: SweepRule, now: float) -> list[str]:
    """Staging volumes of installs that never finished (the cache itself is not managed)."""
    try:
        volumes = api.volumes(filters={"label": LABEL_MANAGED}).get("Volumes") or []
    except DOCKER_ERRORS as exc:
        raise ExecutorError(f"cannot list sandbox volumes: {exc}", step="sweep") from exc
    volume_rule = SweepRule(rule.keep_controller, rule.all_controllers, rule.force)
    removed = []
    for info in volumes:
        if volume_rule.doomed(info.get("Labels") or {}, now):
            try:
                api.remove_volume(info["Name"], force=True)
                removed.append(info["Name"])
            except DOCKER_ERRORS as exc:  # in use, or gone already
                logger.debug("sweep: volume {} stays: {}", info["Name"], exc)
    return removed


def sweep(api: Any, rule: SweepRule) -> list[str]:
    """Remove what ``rule`` dooms; return the container ids and volume names removed.

    Raises:
        ExecutorError: the engine cannot list its containers or volumes.
    """
    now = time.time()
    removed = _containers(api, rule, now) + _volumes(api, rule, now)
    if removed:  # the caller says it, in its own words, at INFO
        logger.debug("sweep removed: {}", ", ".join(r[:12] for r in removed))
    return removed
