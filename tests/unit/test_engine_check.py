"""`scripts/ensure-docker.sh` and the Makefile where no Docker engine answers.

Every case here is one where the script cannot start an engine: an endpoint where
nothing listens (DOCKER_HOST), a user who is not root, a machine without docker
or apt-get. It must stop within seconds, with what is missing and the same
guidance as the CLI, and exit 69; the Makefile must run it before anything else.
No engine is started, stopped or even reached: the endpoint is a socket path
that does not exist, and PATH is cut down where the default one would do.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_data_agent.cli.exits import EXIT_NO_ENGINE
from ai_data_agent.executor.docker.backend import NO_ENGINE_HELP

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "ensure-docker.sh"
GUIDANCE = NO_ENGINE_HELP.splitlines()[1:]
NOBODY = 65534
# What the script needs besides docker, dockerd, apt-get and systemctl.
TOOLS = ("bash", "timeout", "grep", "tail", "id", "cat", "awk", "pgrep", "sleep")
# Every target that needs an engine; `engine` must run before anything else.
ENGINE_TARGETS = [
    "engine",
    "images",
    "test",
    "soak",
    "test-slow",
    "run-sample",
    "bench",
    "doctor",
    "sweep",
    "controller-image",
    "compose-up",
    "compose-down",
]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def dead_endpoint() -> str:
    """A unix socket under a directory that does not exist: nothing can listen there."""
    return f"unix:///tmp/ai-data-agent-{uuid.uuid4().hex}/docker.sock"


@pytest.fixture
def bare_path() -> Iterator[str]:
    """A PATH with the script's tools and no docker, dockerd, apt-get or systemctl.

    In the system temp dir, as pytest's ``tmp_path`` is not reachable by nobody.
    """
    bin_dir = Path(tempfile.mkdtemp(prefix="ai_data_agent_bin_"))
    try:
        bin_dir.chmod(0o755)
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found is not None, tool
            (bin_dir / tool).symlink_to(found)
        yield str(bin_dir)
    finally:
        shutil.rmtree(bin_dir)


def run_script(
    env: dict[str, str], *, as_nobody: bool = False
) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {"PATH": os.environ["PATH"], "HOME": "/", "USER": "nobody" if as_nobody else "root"}
    user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}
    started = time.monotonic()
    # The script goes in on stdin and runs from /: a clone in a private directory (as
    # `mktemp -d` makes) is not readable by nobody.
    done = subprocess.run(
        ["/bin/bash", "-s"],
        input=SCRIPT.read_text(),
        env={**base, **env},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        **user,  # type: ignore[arg-type]
    )
    return done, time.monotonic() - started


def assert_stopped_with_guidance(
    done: subprocess.CompletedProcess[str], elapsed: float, missing: str, why: str
) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == EXIT_NO_ENGINE, done.stderr
    assert lines[0].startswith(f"engine: {missing}"), lines[0]
    assert lines[1] == f"engine: cannot start one here: {why}"
    assert lines[2:] == GUIDANCE  # the CLI's text, line for line, and nothing started
    assert elapsed < 10, f"gave up after {elapsed:.1f} s"


@pytest.mark.parametrize("as_nobody", [False, True], ids=["caller", "nobody"])
def test_a_dead_endpoint_is_not_replaced_by_a_local_engine(
    dead_endpoint: str, as_nobody: bool
) -> None:
    if as_nobody and os.geteuid() != 0:
        pytest.skip("switching users needs root")
    done, elapsed = run_script({"DOCKER_HOST": dead_endpoint}, as_nobody=as_nobody)
    assert_stopped_with_guidance(
        done,
        elapsed,
        f"no Docker engine answers at {dead_endpoint}: Cannot connect to the Docker daemon",
        f"DOCKER_HOST is {dead_endpoint}, and this script starts only a local engine",
    )


def test_the_project_setting_names_the_engine(dead_endpoint: str) -> None:
    done, elapsed = run_script(
        {"AI_DATA_AGENT_DOCKER_HOST": dead_endpoint, "DOCKER_HOST": "unix:///var/run/docker.sock"}
    )
    assert_stopped_with_guidance(
        done,
        elapsed,
        f"no Docker engine answers at {dead_endpoint}",
        f"AI_DATA_AGENT_DOCKER_HOST is {dead_endpoint}, and this script starts only a local engine",
    )


@needs_root
def test_a_user_without_docker_is_told_what_to_do(bare_path: str) -> None:
    done, elapsed = run_script({"PATH": bare_path}, as_nobody=True)
    assert_stopped_with_guidance(
        done,
        elapsed,
        "no Docker engine answers: the docker command is not installed",
        "starting one needs root, and this is nobody",
    )


@needs_root
def test_root_without_dockerd_or_apt_is_told_what_to_do(bare_path: str) -> None:
    done, elapsed = run_script({"PATH": bare_path})
    assert_stopped_with_guidance(
        done,
        elapsed,
        "no Docker engine answers: the docker command is not installed",
        "dockerd is not installed, and there is no apt-get to install it",
    )


def run_make(target: str, env: dict[str, str]) -> tuple[int, str, str, float]:
    """`make TARGET` in its own process group, all of it killed after 20 s.

    Should the check ever come too late, what follows it must cost nothing here:
    ``PYTHON=false`` fails `setup` at once, and the group kill bounds the rest.
    """
    started = time.monotonic()
    with subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO), target, "PYTHON=false"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as make:
        try:
            stdout, stderr = make.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGTERM)
            make.communicate()
            pytest.fail(f"make {target} still ran after 20 s")
    return make.returncode, stdout, stderr, time.monotonic() - started


@pytest.mark.parametrize("target", ENGINE_TARGETS)
def test_make_checks_the_engine_before_anything_else(
    target: str, dead_endpoint: str, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"  # a fresh clone: `setup` would make it
    env = {"PATH": os.environ["PATH"], "HOME": "/", "DOCKER_HOST": dead_endpoint}
    returncode, stdout, stderr, elapsed = run_make(target, {**env, "VENV": str(venv)})
    assert returncode != 0
    assert f"engine] Error {EXIT_NO_ENGINE}" in stderr, stderr
    assert GUIDANCE[0] in stderr.splitlines()
    assert not venv.exists(), "setup ran before the engine check"
    assert stdout == "", stdout  # no image or test step started
    assert elapsed < 10, f"make {target} gave up after {elapsed:.1f} s"
