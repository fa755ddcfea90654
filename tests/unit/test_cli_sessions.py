"""``ai-data-agent session ...`` through the real client against a stub daemon: the
arguments, the exit codes, the table, paths refused before sending, and Ctrl-C on a cell.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from client_stub import BASE, INFO, error_response, session_json
from typer.testing import CliRunner

from ai_data_agent.checkpoint_models import CheckpointInfo, LostVariable, RestoreReport
from ai_data_agent.cli import app
from ai_data_agent.cli import common as cli_common
from ai_data_agent.cli.exits import EXIT_BUSY, EXIT_USAGE
from ai_data_agent.client import Client
from ai_data_agent.models import InstallReport
from ai_data_agent.session_models import CellResult, CellStatus, PackagesResult

Route = Callable[[httpx.Request], httpx.Response]
SESSION = "0123456789abcdef0123456789abcdef"


class StubDaemon:
    """Answers by method and path (below ``/v1/sessions/{SESSION}``); keeps every request."""

    def __init__(self, routes: dict[tuple[str, str], Route | httpx.Response]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(200, json=INFO.model_dump(mode="json"))
        self.requests.append(request)
        suffix = request.url.path.removeprefix(f"/v1/sessions/{SESSION}")
        answer = self.routes.get((request.method, suffix)) or httpx.Response(404)
        return answer(request) if callable(answer) else answer

    def sent(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.requests]


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StubDaemon]]:
    def make(routes: dict[tuple[str, str], Route | httpx.Response]) -> StubDaemon:
        stub = StubDaemon({("GET", ""): httpx.Response(200, json=session_json(SESSION)), **routes})

        def client(url: str, token: str | None = None) -> Client:
            assert url == BASE
            return Client(url, token=token, transport=httpx.MockTransport(stub))

        monkeypatch.setattr(cli_common, "Client", client)
        return stub

    yield make


def session(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, ["session", *args, "--server", BASE], input=stdin)


def packages_result(requirements: list[str]) -> httpx.Response:
    result = PackagesResult(requirements=requirements, install=InstallReport())
    return httpx.Response(200, json=result.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tabulate"], ["tabulate"]),  # as pip install takes them
        (["tabulate", "six==1.17.0"], ["tabulate", "six==1.17.0"]),
        (["-p", "tabulate"], ["tabulate"]),
        (["tabulate", "-p", "six"], ["tabulate", "six"]),
    ],
)
def test_install_takes_packages_as_arguments_or_options(
    daemon: Callable[..., StubDaemon], args: list[str], expected: list[str]
) -> None:
    stub = daemon(
        {("POST", "/packages"): lambda r: packages_result(json.loads(r.content)["requirements"])}
    )
    out = session("install", SESSION, *args)
    assert out.exit_code == 0, out.output
    assert json.loads(stub.requests[-1].content) == {"requirements": expected}


def test_install_without_packages_says_what_to_pass(daemon: Callable[..., StubDaemon]) -> None:
    stub = daemon({})
    out = session("install", SESSION)
    assert out.exit_code == EXIT_USAGE
    assert "name the requirements to add" in out.stderr
    assert stub.requests == []


def test_a_busy_session_has_its_own_exit_code(daemon: Callable[..., StubDaemon]) -> None:
    daemon({("POST", "/cells"): error_response(409, "session_busy", "a cell is running")})
    out = session("run", SESSION, "-", stdin="1\n")
    assert out.exit_code == EXIT_BUSY == 75, out.output
    assert "session_busy" in out.stderr


def test_an_unknown_session_is_bad_input(daemon: Callable[..., StubDaemon]) -> None:
    daemon({("GET", ""): error_response(404, "not_found", "no session with id 'x'")})
    assert session("show", SESSION).exit_code == EXIT_USAGE


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a//b"])
def test_get_refuses_an_unsafe_path_as_put_does_before_sending_anything(
    daemon: Callable[..., StubDaemon], path: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = daemon({})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local.txt").write_text("x")
    got = session("get", SESSION, path)
    put = session("put", SESSION, "local.txt", path)
    assert got.exit_code == put.exit_code == EXIT_USAGE
    assert got.stderr == put.stderr
    assert f"path {path!r}" in got.stderr
    assert stub.requests == []


def test_a_missing_file_is_not_found_naming_its_path(
    daemon: Callable[..., StubDaemon], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = "no file outputs/none.csv in the session"
    daemon({("GET", "/files/outputs/none.csv"): error_response(404, "file_not_found", message)})
    monkeypatch.chdir(tmp_path)
    out = session("get", SESSION, "outputs/none.csv")
    assert out.exit_code == EXIT_USAGE
    assert "404 file_not_found: no file outputs/none.csv" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_ls_when_not_a_terminal_prints_whole_plain_columns(
    daemon: Callable[..., StubDaemon],
) -> None:
    info = session_json(SESSION) | {"requirements": ["pandas==2.2.3", "matplotlib"]}
    daemon({("GET", "/v1/sessions"): httpx.Response(200, json={"items": [info]})})
    out = CliRunner().invoke(app, ["session", "ls", "--server", BASE], env={"COLUMNS": "40"})
    assert out.exit_code == 0, out.output
    header, row = out.stdout.splitlines()
    assert header.split() == [
        "id",
        "status",
        "cells",
        "generation",
        "requirements",
        "last",
        "activity",
    ]
    assert row.split() == [
        SESSION,
        "idle",
        "0",
        "0",
        "pandas==2.2.3",
        "matplotlib",
        "2025-01-01",
        "00:00:00",
    ]
    assert row.index("idle") == header.index("status")  # aligned columns, nothing cut
    listed = CliRunner().invoke(app, ["session", "ls", "--json", "--server", BASE])
    assert [s["id"] for s in json.loads(listed.stdout)] == [SESSION]


def cell(status: CellStatus, **fields: Any) -> dict[str, Any]:
    return CellResult(
        session_id=SESSION,
        execution_count=1,
        generation=1,
        status=status,
        state="preserved",
        **fields,
    ).model_dump(mode="json")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_on_session_run_interrupts_the_cell_on_the_daemon_then_exits_128_plus_it(
    daemon: Callable[..., StubDaemon], stop: signal.Signals
) -> None:
    """The cell's events stream until the daemon gets the interrupt; Ctrl-C (SIGINT to the
    main thread) arrives once the cell runs, so it lands while the command waits for it."""
    running, interrupted = threading.Event(), threading.Event()
    ended = cell(
        CellStatus.INTERRUPTED,
        error={"ename": "KeyboardInterrupt", "evalue": "", "traceback": ["KeyboardInterrupt\n"]},
    )

    def events() -> Iterator[bytes]:
        yield b'event: stdout\ndata: {"data": "working\\n"}\n\n'
        running.set()
        assert interrupted.wait(10)
        yield f"event: result\ndata: {json.dumps(ended)}\n\n".encode()

    def interrupt(request: httpx.Request) -> httpx.Response:
        interrupted.set()
        return httpx.Response(200, json={"interrupted": True})

    accepted = {"session_id": SESSION, "execution_count": 1, "status": "running"}
    stub = daemon(
        {
            ("POST", "/cells"): httpx.Response(202, json=accepted),
            ("GET", "/cells/1/events"): lambda r: httpx.Response(200, content=events()),
            ("POST", "/interrupt"): interrupt,
        }
    )
    main = threading.get_ident()
    threading.Thread(
        target=lambda: running.wait(10) and signal.pthread_kill(main, stop), daemon=True
    ).start()
    out = session("run", SESSION, "-", stdin="while True: pass\n")
    assert out.exit_code == 128 + stop, out.output
    assert ("POST", f"/v1/sessions/{SESSION}/interrupt") in stub.sent(), out.output
    assert out.stdout == "working\n"
    assert "interrupting the cell in session" in out.stderr
    assert "KeyboardInterrupt" in out.stderr
    assert f"stopped by {stop.name}: the cell was interrupted" in out.stderr


def test_a_cell_names_its_files_by_the_path_session_get_takes(
    daemon: Callable[..., StubDaemon],
) -> None:
    chart = {"path": "plots/chart.png", "size": 3, "sha256": "0" * 64, "media_type": "image/png"}
    failed = cell(
        CellStatus.ERROR,
        artifacts=[chart],
        error={"ename": "KeyError", "evalue": "'x'", "traceback": ["KeyError: 'x'\n"]},
    )
    accepted = {"session_id": SESSION, "execution_count": 1, "status": "running"}
    daemon(
        {
            ("POST", "/cells"): httpx.Response(202, json=accepted),
            ("GET", "/cells/1/events"): httpx.Response(
                200, text=f"event: result\ndata: {json.dumps(failed)}\n\n"
            ),
        }
    )
    shown = session("run", SESSION, stdin="d['x']\n")
    assert shown.exit_code == 1  # an exception in the cell
    assert "file: outputs/plots/chart.png (3 bytes, image/png)" in shown.stderr
    assert "KeyError: 'x'" in shown.stderr


def test_checkpoint_pause_resume_and_fork_say_what_came_back(
    daemon: Callable[..., StubDaemon],
) -> None:
    lost = [LostVariable(name="sock", type="socket", reason="TypeError: cannot pickle")]
    info = CheckpointInfo(
        session_id=SESSION,
        seq=2,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        execution_count=5,
        bytes=1234,
        kept=["df", "f"],
        lost=lost,
    )
    report = RestoreReport(
        session_id=SESSION, checkpoint=2, state="restored", restored=["df"], lost=lost
    )
    paused = {**session_json(SESSION), "status": "paused", "checkpoint": 2}
    stub = daemon(
        {
            ("POST", "/checkpoint"): httpx.Response(201, json=info.model_dump(mode="json")),
            ("POST", "/pause"): httpx.Response(200, json=paused),
            ("POST", "/resume"): httpx.Response(200, json=report.model_dump(mode="json")),
            ("POST", "/fork"): httpx.Response(201, json=session_json("f" * 32)),
        }
    )
    out = session("checkpoint", SESSION)
    assert out.exit_code == 0, out.output
    assert out.stdout.startswith("checkpoint 2 after cell 5: 2 kept, 1 not, 1234 bytes")
    assert "not kept: sock (socket): TypeError: cannot pickle" in out.stdout
    assert session("pause", SESSION).stdout == "paused at checkpoint 2\n"
    assert session("resume", SESSION).stdout.startswith("restored: 1 variable(s) back")
    assert session("fork", SESSION, "--checkpoint", "2").stdout == "f" * 32 + "\n"
    assert json.loads(stub.requests[-1].content) == {"checkpoint": 2}


def test_new_asks_for_the_allow_hosts_and_for_no_network_without_them(
    daemon: Callable[..., StubDaemon],
) -> None:
    stub = daemon({("POST", "/v1/sessions"): httpx.Response(201, json=session_json(SESSION))})
    out = session("new", "--allow", "files.example.com", "--allow", "*.s3.example.com:443")
    assert out.exit_code == 0, out.output
    assert out.stdout.strip() == SESSION
    body = json.loads(stub.requests[-1].content)
    assert body["network"] == {"allow": ["files.example.com", "*.s3.example.com:443"]}
    assert session("new").exit_code == 0
    assert "network" not in json.loads(stub.requests[-1].content)
