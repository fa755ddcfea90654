"""The session commands at a terminal, as a person uses them: ``repl`` and ``session run``
in a pseudo-terminal, Ctrl-C and Ctrl-D typed, on the real engine, locally and on a
real daemon.

- Ctrl-C while a cell runs interrupts the cell: ``KeyboardInterrupt``, the variables
  kept, the prompt back; Ctrl-C at the prompt drops the line; Ctrl-D or ``exit``
  ends the prompt and removes the session.
- Ctrl-C on ``session run`` interrupts the cell on the daemon before the command
  exits (130), so the next cell is not refused as busy.
- ``repl -p`` says what it does while it installs and starts.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from ai_data_agent.client import Client
from ai_data_agent.session_models import SessionStatus
from tests.integration.engine import owned_by
from tests.support.daemon import Daemon
from tests.support.settings import child_env
from tests.support.terminal import Terminal

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("ai-data-agent"))
# A cell that says it runs (in words its echo does not hold), then runs until interrupted.
BUSY = (
    "for tick in range(3000):",
    "    __import__('time').sleep(0.1) if tick else print('bu' + 'sy', flush=True)",
    "",
)
PROMPT = r"(?m)^>>> "


def cli_env(settings_kwargs: dict[str, Any], tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**child_env(settings_kwargs), "XDG_CACHE_HOME": str(tmp_path), "NO_COLOR": "1", **extra}


def type_cell(term: Terminal, lines: tuple[str, ...]) -> None:
    """Type a cell line by line, each after the prompt for it."""
    for line in lines[:-1]:
        term.type(line + "\n")
        term.expect(r"\.\.\. ")
    term.type(lines[-1] + "\n")


def drive_the_repl(term: Terminal, leave: str) -> None:
    """Variables, Ctrl-C in a cell and at the prompt, then ``leave`` (Ctrl-D or exit)."""
    term.expect("session ready", timeout_s=120)
    term.expect(PROMPT)
    term.type("x = 41\n")
    term.expect(PROMPT)
    type_cell(term, BUSY)
    term.expect(r"(?m)^busy")
    term.ctrl_c()
    term.expect("interrupting the cell")
    term.expect("KeyboardInterrupt")
    term.expect(PROMPT)
    term.type("x + 1\n")  # the state survived the interrupt
    term.expect(r"(?m)^42$")
    term.expect(PROMPT)
    term.type("y = (1,\n")  # an unfinished cell, dropped by Ctrl-C
    term.expect(r"\.\.\. ")
    term.ctrl_c_until("KeyboardInterrupt")
    term.expect(PROMPT)
    term.type("print('after', x)\n")
    term.expect(r"(?m)^after 41$")
    term.expect(PROMPT)
    if leave == "exit":
        term.type("exit\n")
    else:
        term.ctrl_d()


@pytest.mark.parametrize("leave", ["ctrl-d", "exit"])
def test_the_local_repl_interrupts_cells_and_ends_with_its_session(
    settings_kwargs: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
    leave: str,
) -> None:
    with Terminal.start([CLI, "repl"], cli_env(settings_kwargs, tmp_path)) as term:
        drive_the_repl(term, leave)
        assert term.wait(60) == 0, term.transcript()
        assert owned_by(docker_client, term.process.pid) == []  # the session's sandbox is gone


def test_the_repl_on_a_daemon_interrupts_cells_and_closes_its_session(
    settings_kwargs: dict[str, Any], start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = start_daemon()
    env = cli_env(settings_kwargs, tmp_path, AI_DATA_AGENT_TOKEN=daemon.token)
    with Terminal.start([CLI, "repl", "--server", daemon.url], env) as term:
        drive_the_repl(term, "ctrl-d")
        assert term.wait(60) == 0, term.transcript()
    with Client(daemon.url, token=daemon.token) as client:
        (session,) = client.sessions()
    assert session.status == SessionStatus.CLOSED
    assert session.execution_count == 4  # x, the interrupted cell, x + 1 and the print


def test_ctrl_c_on_session_run_interrupts_the_cell_on_the_daemon(
    settings_kwargs: dict[str, Any], start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    daemon = start_daemon(interrupt_grace_s=2.0)
    env = cli_env(settings_kwargs, tmp_path, AI_DATA_AGENT_SERVER=daemon.url)
    env["AI_DATA_AGENT_TOKEN"] = daemon.token
    new = subprocess.run(
        [CLI, "session", "new"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    session_id = new.stdout.strip()
    cell = tmp_path / "busy.py"
    cell.write_text("x = 41\n" + "\n".join(BUSY))
    with Terminal.start([CLI, "session", "run", session_id, str(cell)], env) as term:
        term.expect(r"(?m)^busy")
        term.ctrl_c()
        term.expect(f"interrupting the cell in session {session_id} on the daemon")
        term.expect("stopped by SIGINT: the cell was interrupted")
        assert term.wait(30) == 130, term.transcript()
        assert "KeyboardInterrupt" in term.text
    # The daemon's session is idle again: the next cell runs at once, with the state kept.
    after = subprocess.run(
        [CLI, "session", "run", session_id, "-"],
        input="x + 1\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (after.returncode, after.stdout) == (0, "42\n"), after.stderr
    subprocess.run([CLI, "session", "rm", session_id], env=env, check=True, timeout=60)


def test_the_repl_says_what_it_does_while_it_installs_and_starts(
    settings_kwargs: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    values = {**settings_kwargs, "install_mode": "cache", "installer": "uv"}
    with Terminal.start([CLI, "repl", "-p", "six"], cli_env(values, tmp_path)) as term:
        term.expect("installing six, then starting a session on the local engine")
        term.expect("session ready", timeout_s=180)
        term.expect(PROMPT)
        term.type("import six; six.__name__\n")
        term.expect("'six'")
        term.ctrl_d()
        assert term.wait(60) == 0, term.transcript()
        assert owned_by(docker_client, term.process.pid) == []


def test_without_a_terminal_the_repl_shows_no_progress(
    settings_kwargs: dict[str, Any], docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    done = subprocess.run(
        [CLI, "repl"],
        input="print(6 * 7)\n",
        env=cli_env(settings_kwargs, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout
    assert "starting a session" not in done.stderr
