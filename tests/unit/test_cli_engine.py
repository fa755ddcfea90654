"""The CLI where no Docker engine answers: the guidance and exit 69, at once, no traceback.

The engine endpoint is a socket path where nothing listens, so no engine is
touched: one that does not exist (no engine installed) and one a stopped engine
left behind (a socket file that refuses connections).
"""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai_data_agent.cli import app
from ai_data_agent.cli.exits import EXIT_CODES, EXIT_NO_ENGINE
from ai_data_agent.executor.docker.backend import NO_ENGINE_HELP
from ai_data_agent.models import RunStatus

# docker-py's unix transport leaves the socket of a failed connect to the garbage
# collector (docker/transport/unixconn.py): expected here, and collected once after
# this module's last test (a full collection takes seconds late in a session) so that
# its ResourceWarning never lands in an unrelated module.
pytestmark = pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning")

# What to do: every line of the guidance after the one naming the endpoint and reason.
GUIDANCE = NO_ENGINE_HELP.splitlines()[1:]
ENGINE_COMMANDS = [
    ["run", "-"],
    ["doctor"],
    ["sweep"],
    ["cache", "list"],
    ["cache", "prune"],
    ["repl"],
    ["mcp"],
]


@pytest.fixture(autouse=True, scope="module")
def _collect_failed_connections() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture(params=["missing", "stale"])
def dead_socket(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = tmp_path / "docker.sock"
    if request.param == "stale":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(path))  # bound, never listening: connect is refused
    return f"unix://{path}"


def test_no_engine_has_its_own_exit_code() -> None:
    assert EXIT_NO_ENGINE == 69  # EX_UNAVAILABLE, as documented in the CLI and README
    assert EXIT_NO_ENGINE not in (*EXIT_CODES.values(), 0, 1, 2)


@pytest.mark.parametrize("command", ENGINE_COMMANDS, ids=" ".join)
def test_engine_commands_stop_at_once_with_the_guidance(
    command: list[str], dead_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    started = time.monotonic()
    out = CliRunner().invoke(app, command, input="print(1)\n")
    elapsed = time.monotonic() - started

    assert out.exit_code == EXIT_NO_ENGINE, out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert "Traceback" not in out.stderr
    first = out.stderr.splitlines()[0]
    assert first.startswith(f"error: No Docker engine answers at {dead_socket}: ")
    assert out.stderr.splitlines()[1:] == GUIDANCE  # printed as written, not re-wrapped
    assert out.stdout == ""
    assert elapsed < 5, f"{' '.join(command)} took {elapsed:.1f} s to give up"


def test_the_project_setting_names_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"unix://{tmp_path / 'elsewhere.sock'}"
    monkeypatch.setenv("AI_DATA_AGENT_DOCKER_HOST", endpoint)
    out = CliRunner().invoke(app, ["doctor"])
    assert out.exit_code == EXIT_NO_ENGINE
    assert out.stderr.startswith(f"error: No Docker engine answers at {endpoint}: ")


def test_run_on_a_daemon_needs_no_local_engine(
    dead_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    out = CliRunner().invoke(app, ["run", "-", "--server", "http://127.0.0.1:9"], input="pass\n")
    assert out.exit_code == EXIT_CODES[RunStatus.ERROR]
    assert "cannot reach http://127.0.0.1:9" in " ".join(out.stderr.split())
    assert "No Docker engine" not in out.stderr


def test_bad_input_is_reported_before_the_engine(
    dead_socket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", dead_socket)
    out = CliRunner().invoke(app, ["run", str(tmp_path / "absent.py")])
    assert out.exit_code == 2
    assert "No Docker engine" not in out.stderr
