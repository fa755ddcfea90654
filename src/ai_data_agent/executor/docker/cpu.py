"""The CPU time a sandbox container has used, read on the host from its cgroup.

    reader = CpuReader(client.api)
    reader.usage_ns(container_id)      # ns since the container started; None: not readable

Never a number from inside the sandbox: the container's cgroup counter
(``cpuacct.usage``, or ``usage_usec`` of ``cpu.stat`` under cgroup v2) as the
host sees it. Where the engine runs on this host, the counter is read from
the cgroup file system (microseconds); otherwise through the Docker Engine
API's one-shot stats (``cpu_stats.cpu_usage.total_usage``), which answer at
the engine's next one-second sample, so a reading there takes up to a second.
Both report runc's and gVisor's (runsc) containers alike. A container that
has stopped has no counter any more: read it while it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loguru import logger

from ai_data_agent.executor.docker.sandbox import DOCKER_ERRORS

__all__ = ["CGROUP_ROOT", "CpuReader"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where the engine's cgroup drivers put a container's counter: {id} is its full id.
V1_FILES = (
    "cpuacct/docker/{id}/cpuacct.usage",  # cgroupfs driver
    "cpu,cpuacct/docker/{id}/cpuacct.usage",
    "cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",  # systemd driver
    "cpu,cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",
)
V2_FILES = ("docker/{id}/cpu.stat", "system.slice/docker-{id}.scope/cpu.stat")


class CpuReader:
    """Reads containers' CPU counters (see the module docstring). ``api`` is docker-py's
    low-level client; ``root`` the host's cgroup mount (None: the API only)."""

    def __init__(self, api: Any, root: Path | None = CGROUP_ROOT) -> None:
        self._api = api
        self._root = root

    def usage_ns(self, container_id: str) -> int | None:
        """The container's CPU time so far, in ns; None when neither the cgroup nor the
        engine gives it (the container stopped, or the engine reports no CPU)."""
        found = self._from_cgroup(container_id)
        return found if found is not None else self._from_engine(container_id)

    def _from_cgroup(self, container_id: str) -> int | None:
        if self._root is None:
            return None
        for pattern in V1_FILES:
            text = _read(self._root / pattern.format(id=container_id))
            if text is not None and text.strip().isdigit():
                return int(text)
        for pattern in V2_FILES:
            text = _read(self._root / pattern.format(id=container_id))
            for line in (text or "").splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec" and value.strip().isdigit():
                    return int(value) * 1000
        return None

    def _from_engine(self, container_id: str) -> int | None:
        try:
            stats = self._api.stats(container_id, stream=False, one_shot=True)
        except DOCKER_ERRORS as exc:
            logger.debug("no CPU figure for container {}: {}", container_id[:12], exc)
            return None
        usage = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
        total = usage.get("total_usage")
        # A stopped container's stats are all zero: no figure, not "no CPU used".
        return total if isinstance(total, int) and total > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
