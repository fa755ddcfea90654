"""Prewarmed requirement sets through the real daemon: the first run of one is a cache hit,
even when the daemon's index lists an environment that the volume has lost, and takes a
pre-imported pooled sandbox, which ``/metrics`` and ``/readyz`` count per profile."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_data_agent import Executor
from ai_data_agent.client import Client
from ai_data_agent.models import RunStatus
from tests.support.daemon import Daemon
from tests.support.settings import build_settings
from tests.support.wait import poll

pytestmark = pytest.mark.integration

REQUIREMENT = "six==1.14.0"  # a set no other test uses
CACHE = {"install_mode": "cache", "installer": "uv"}


def prewarmed(daemon: Daemon) -> str:
    """/readyz's prewarm progress once the one set is done (ready or failed)."""
    detail: dict[str, str] = {}

    def done() -> bool:
        answer = httpx.get(f"{daemon.url}/readyz", timeout=5).json()
        detail.update(answer.get("checks") or {})
        return "installing" not in detail.get("prewarm", "installing")

    poll(done, timeout_s=180, what="the prewarm to finish", diagnostics=lambda: str(detail))
    return detail["prewarm"]


def preimported_pool(daemon: Daemon, metric: str) -> float:
    """``metric`` of the daemon's one pre-imported pool profile (0 while there is none)."""
    answer = daemon.client().get("/metrics")
    assert answer.status_code == 200, answer.text
    text = answer.text
    found = re.search(rf'^{metric}\{{preimported="true",profile="\w+"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def first_run(daemon: Daemon) -> Any:
    with Client(daemon.url, daemon.token, timeout=60) as client:
        return client.run("import six; print(six.__version__)", requirements=[REQUIREMENT])


def forget_on_the_volume(settings_kwargs: dict[str, Any], index: Path) -> None:
    """Prune the set from the shared volume through another index (the daemon's goes stale)."""
    with Executor(build_settings({**settings_kwargs, **CACHE, "env_cache_index": index})) as other:
        assert other.env_cache is not None
        key = other.env_cache.key_for([REQUIREMENT], other.backend.resolve_image(), "forget")
        other.env_cache.prune(keys=[key])


def test_a_prewarmed_set_is_a_cache_hit_even_after_the_volume_lost_it(
    start_daemon: Callable[..., Daemon], settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    index = tmp_path / "daemon-index.sqlite3"
    forget_on_the_volume(settings_kwargs, tmp_path / "other-index.sqlite3")
    warm = {**CACHE, "prewarm": f'[["{REQUIREMENT}"]]', "env_cache_index": index, "pool_size": 0}

    daemon = start_daemon(**{**warm, "pool_size": 1})
    assert prewarmed(daemon) == "1 of 1 set(s) ready"
    poll(
        lambda: preimported_pool(daemon, "ai_data_agent_pool_idle") == 1,
        timeout_s=60,
        what="an idle pre-imported sandbox in /metrics",
    )
    result = first_run(daemon)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.install.cache_hit is True and result.stdout == "1.14.0\n"
    assert result.environment.preimported == ["six"]
    assert preimported_pool(daemon, "ai_data_agent_pool_handouts_total") == 1
    pool = httpx.get(f"{daemon.url}/readyz", timeout=5).json()["checks"]["warm pool"]
    assert re.search(r"; \w+ \(six\): \d/1 idle, \d+ MB each, 1 taken, \d+ missed", pool), pool
    daemon.stop()

    forget_on_the_volume(settings_kwargs, tmp_path / "other-index.sqlite3")  # index now stale
    restarted = start_daemon(**warm)
    assert prewarmed(restarted) == "1 of 1 set(s) ready"
    again = first_run(restarted)
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert again.install.cache_hit is True
