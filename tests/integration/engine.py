"""Queries of the shared engine that integration tests make about their own sandboxes."""

from __future__ import annotations

from typing import Any

import docker

from ai_data_agent.executor.spec import LABEL_CONTROLLER, LABEL_MANAGED, LABEL_OWNER, LABEL_RUN_ID

__all__ = ["controller_containers", "owned_by", "run_containers"]

ATTEMPTS = 5  # listings of containers that keep going away while they are inspected


def _listed(client: docker.DockerClient, label: str) -> list[Any]:
    """The containers with ``label``, inspected. docker-py lists, then inspects each: one
    removed in between is a 404, so the listing is taken again."""
    for _ in range(ATTEMPTS - 1):
        try:
            return client.containers.list(all=True, filters={"label": label})
        except docker.errors.NotFound:
            continue
    return client.containers.list(all=True, filters={"label": label})


def run_containers(client: docker.DockerClient, run_id: str) -> list[Any]:
    """Every container (running or not) of one run."""
    return _listed(client, f"{LABEL_RUN_ID}={run_id}")


def controller_containers(client: docker.DockerClient, controller: str) -> list[Any]:
    """Every container (running or not) of one controller."""
    return _listed(client, f"{LABEL_CONTROLLER}={controller}")


def owned_by(client: docker.DockerClient, pid: int) -> list[Any]:
    """The sandboxes whose owner label names this pid (``boot:namespace:pid:start``): those of
    a CLI process, whose controller id the test does not know."""
    containers = client.containers.list(all=True, filters={"label": LABEL_MANAGED}, sparse=True)
    return [
        c
        for c in containers
        if (c.attrs.get("Labels") or {}).get(LABEL_OWNER, "").split(":")[2:3] == [str(pid)]
    ]
