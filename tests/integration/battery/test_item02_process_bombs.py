"""Item 2: fork and thread bombs are stopped by the pids limit; the host's process count recovers.

The sandbox's pids cgroup is watched while the bomb runs: it must report the
limit (the default, 256) and never more tasks than that.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.wait import poll

from .conftest import Battery, host_process_count

pytestmark = pytest.mark.integration

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""
# Holds its threads for a moment once the limit stops it, so the watcher sees it.
THREAD_BOMB = """
import threading, time
started = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        started += 1
except RuntimeError:
    print("threads started:", started, flush=True)
    time.sleep(1)
    raise
"""
# Tasks above the baseline that unrelated activity on this machine may add.
PROCESS_SLACK = 32


def pids_cgroup(container_id: str) -> Path | None:
    for path in (
        Path(f"/sys/fs/cgroup/pids/docker/{container_id}"),  # cgroup v1, cgroupfs driver
        Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope"),  # v2, systemd
        Path(f"/sys/fs/cgroup/docker/{container_id}"),  # v2, cgroupfs
    ):
        if (path / "pids.max").exists():
            return path
    return None


class PidsWatcher:
    """Samples the pids cgroup of every container of the battery while a run goes on."""

    def __init__(self, battery: Battery) -> None:
        self.battery = battery
        self.max_seen: dict[str, int] = {}
        self.limit: dict[str, str] = {}
        self.denied: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> PidsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            for cid in self.battery.container_ids():
                cgroup = pids_cgroup(cid)
                if cgroup is None:
                    continue
                try:
                    current = int((cgroup / "pids.current").read_text())
                    self.limit[cid] = (cgroup / "pids.max").read_text().strip()
                    events = (cgroup / "pids.events").read_text().split()
                except (OSError, ValueError):
                    continue  # the container went away meanwhile
                self.max_seen[cid] = max(self.max_seen.get(cid, 0), current)
                if len(events) == 2 and events[0] == "max":
                    self.denied[cid] = max(self.denied.get(cid, 0), int(events[1]))


@pytest.mark.parametrize(
    ("code", "statuses"),
    [(FORK_BOMB, {"timed_out"}), (THREAD_BOMB, {"failed"})],
    ids=["fork-bomb", "thread-bomb"],
)
def test_bomb_is_stopped_by_the_pids_limit(battery: Battery, code: str, statuses: set[str]) -> None:
    baseline = host_process_count()
    limit = battery.settings.pids_limit

    with PidsWatcher(battery) as watcher:
        outcome = battery.run(code, timeout_s=3)

    # A fork bomb spins until the deadline; a thread bomb dies of "can't start new thread".
    assert outcome.result.status in statuses, (outcome.result.error, outcome.result.stderr[-500:])
    assert outcome.elapsed_s < 3 + 2 + 5
    assert watcher.limit and set(watcher.limit.values()) == {str(limit)}, watcher.limit
    assert max(watcher.max_seen.values()) <= limit
    assert max(watcher.denied.values()) > 0, "the bomb never hit the pids limit"
    poll(
        lambda: host_process_count() <= baseline + PROCESS_SLACK,
        timeout_s=15,
        what="the host's process count back near its baseline",
        diagnostics=lambda: f"{host_process_count()} host processes, baseline {baseline}",
        interval_s=0.1,
    )
    battery.assert_host_unchanged()


def test_benign_twin_many_processes_and_threads_succeed(battery: Battery) -> None:
    code = """
import subprocess, sys, threading, time
procs = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(30)]
assert all(p.wait() == 0 for p in procs)
threads = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(100)]
for t in threads: t.start()
for t in threads: t.join()
print("ok")
"""
    outcome = battery.run(code, timeout_s=20)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "ok\n"
    battery.assert_host_unchanged()
