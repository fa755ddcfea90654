"""Item 11: runs are isolated from each other, at the same time and one after another.

A first run leaves a marker file (in /tmp, its working directory and
/dev/shm), listens on TCP and on an abstract Unix socket, and stays alive; a
concurrent run and the next run must see none of it (nor its processes).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from ai_data_agent import RunEvent

from .conftest import Battery, Outcome

pytestmark = pytest.mark.integration

LEAVE_TRACES = r"""
import os, socket, sys, time
for path in ("/tmp/battery-marker", "marker", "/dev/shm/battery-marker"):
    with open(path, "w") as fh:
        fh.write("run A was here")
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 8765)); tcp.listen(1)
unix = socket.socket(socket.AF_UNIX); unix.bind("\0battery-socket"); unix.listen(1)
print("ready", flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else {hold})
"""
LOOK = r"""
import glob, json, os, socket
out = {"files": [p for p in ("/tmp/battery-marker", "marker", "/dev/shm/battery-marker")
                 if os.path.exists(p)],
       "sandboxes": glob.glob("/tmp/ai_data_agent_*")}
for name, family, address in (("tcp", socket.AF_INET, ("127.0.0.1", 8765)),
                              ("unix", socket.AF_UNIX, "\0battery-socket")):
    with socket.socket(family) as sock:
        sock.settimeout(2)
        try:
            sock.connect(address)
            out[name] = "connected"
        except OSError as exc:
            out[name] = exc.strerror
cmdlines = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            cmdlines.append(open("/proc/%s/cmdline" % pid, "rb").read().decode(errors="replace"))
        except OSError:
            pass
out["others"] = [c for c in cmdlines if "run A was here" in c or "8765" in c]
print(json.dumps(out))
"""


def assert_sees_nothing(outcome: Outcome) -> None:
    result = outcome.result
    assert result.status == "succeeded", (result.error, result.stderr)
    facts: dict[str, Any] = json.loads(result.stdout)
    assert facts["files"] == [] and facts["others"] == [], facts
    assert len(facts["sandboxes"]) == 1, facts  # its own sandbox dir only
    assert facts["tcp"] != "connected" and facts["unix"] != "connected", facts


def test_traces_of_one_run_are_invisible_to_a_concurrent_and_the_next_run(
    battery: Battery,
) -> None:
    a_ready = threading.Event()
    outcomes: dict[str, Outcome] = {}

    def on_a(event: RunEvent) -> None:
        if event.kind == "stdout" and "ready" in event.data:
            a_ready.set()

    def run_a() -> None:
        outcomes["a"] = battery.run(LEAVE_TRACES.replace("{hold}", "4"), on_event=on_a)

    thread = threading.Thread(target=run_a)
    thread.start()
    try:
        assert a_ready.wait(30), "run A never got ready"
        outcomes["concurrent"] = battery.run(LOOK)
    finally:
        thread.join(60)
    outcomes["next"] = battery.run(LOOK)

    assert outcomes["a"].result.status == "succeeded", outcomes["a"].result.error
    assert_sees_nothing(outcomes["concurrent"])
    assert_sees_nothing(outcomes["next"])
    battery.assert_host_unchanged()


def test_benign_twin_a_run_sees_its_own_traces(battery: Battery) -> None:
    code = LEAVE_TRACES.replace("{hold}", "0") + "\n" + LOOK
    outcome = battery.run(code)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    facts = json.loads(outcome.result.stdout.splitlines()[-1])
    assert len(facts["files"]) == 3 and facts["tcp"] == facts["unix"] == "connected", facts
    battery.assert_host_unchanged()
