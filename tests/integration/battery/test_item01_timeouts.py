"""Item 1: code that never ends is `timed_out` within timeout + 2 s, and every process is gone.

Also on gVisor (runsc). The bound is measured from the moment the code starts
(the runner's ``running`` phase) to the return of `Executor.run`, so it
includes killing and removing the container.
"""

from __future__ import annotations

import pytest

from .conftest import RUNTIMES, Battery

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0

BUSY_LOOP = "while True:\n    pass\n"
SLEEP_FOREVER = "import time\ntime.sleep(10**6)\n"
IGNORES_SIGTERM = """
import signal, time
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
while True:
    time.sleep(0.1)
"""
# A grandchild in its own session (so the runner's process-group kill misses
# it) that spins, while the main process sleeps.
DETACHED_SPINNER = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            pass
    os._exit(0)
os.wait()
{after}
"""


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
@pytest.mark.parametrize(
    "code",
    [BUSY_LOOP, SLEEP_FOREVER, IGNORES_SIGTERM, DETACHED_SPINNER.format(after="time.sleep(10**6)")],
    ids=["busy-loop", "sleep-forever", "ignores-sigterm", "detached-spinner"],
)
def test_endless_code_is_timed_out_and_every_process_is_gone(battery: Battery, code: str) -> None:
    outcome = battery.run(code, timeout_s=TIMEOUT_S)

    assert outcome.result.status == "timed_out", (outcome.result.error, outcome.result.stderr)
    assert outcome.running_s is not None, outcome.phases
    assert outcome.running_s < TIMEOUT_S + 2.0
    battery.assert_host_unchanged()  # includes: no host process of the container is left


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
def test_a_spinner_left_behind_by_finished_code_is_killed_with_the_sandbox(
    battery: Battery,
) -> None:
    # The main process ends at once: the run ends with it (its status is the
    # main process's), and the orphan dies with the container.
    outcome = battery.run(DETACHED_SPINNER.format(after="print('parent done')"), timeout_s=30)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "parent done\n"
    assert outcome.running_s is not None and outcome.running_s < 5.0
    battery.assert_host_unchanged()


@pytest.mark.parametrize("battery", RUNTIMES, indirect=True)
def test_benign_twin_code_that_finishes_in_time_succeeds(battery: Battery) -> None:
    code = (
        "import subprocess, sys, time\n"
        "subprocess.run([sys.executable, '-c', 'import time; time.sleep(0.3)'], check=True)\n"
        "time.sleep(0.3)\nprint('done')\n"
    )

    outcome = battery.run(code, timeout_s=TIMEOUT_S)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "done\n"
    battery.assert_host_unchanged()
