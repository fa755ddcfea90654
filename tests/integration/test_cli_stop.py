"""``ai-data-agent run`` stopped by a signal, as ``timeout`` or a closed terminal stops it:
the sandbox is removed and the exit code is 128 + the signal, as with Ctrl-C.

A real CLI process on the real engine; its sandbox is found by the owner label,
which names the CLI's pid.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.engine import owned_by
from tests.support.settings import child_env

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("ai-data-agent"))
CODE = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_removes_the_sandbox_and_exits_128_plus_it(
    settings_kwargs: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
    stop: signal.Signals,
) -> None:
    env = {**child_env(settings_kwargs), "XDG_CACHE_HOME": str(tmp_path)}
    job = tmp_path / "job.py"
    job.write_text(CODE)
    process = subprocess.Popen(
        [CLI, "run", str(job), "--timeout", "60"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"  # the code runs in its sandbox
        assert len(owned_by(docker_client, process.pid)) == 1
        started = time.monotonic()
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 128 + stop, stderr.decode()
    assert time.monotonic() - started < 15  # not the code's timeout
    assert f"stopped by {stop.name}: the sandbox was removed" in stderr.decode()
    assert owned_by(docker_client, process.pid) == []
