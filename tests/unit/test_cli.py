"""The ``ai-data-agent`` command: exit codes, ``run --server`` through a fake client, ``serve``."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from typer.testing import CliRunner

from ai_data_agent.cli import app
from ai_data_agent.cli import common as cli_common
from ai_data_agent.cli import run as cli_run
from ai_data_agent.cli.exits import EXIT_AUTH, EXIT_CODES, exit_code_for
from ai_data_agent.cli.stopping import Stopped
from ai_data_agent.errors import (
    AiDataAgentError,
    ConfigurationError,
    QueueFull,
    RequestRejected,
    RequestTooLarge,
    ServerUnreachable,
    Unauthorized,
)
from ai_data_agent.models import (
    Artifact,
    EgressRequest,
    InstallReport,
    RunRequest,
    RunResult,
    RunStatus,
)
from ai_data_agent.service import server
from ai_data_agent.settings import Settings

SERVER = "http://daemon.test:8000"
OPTIONS = "-p six==1.17.0 --timeout 20 --memory 256 --cpus 0.5 -e GREETING=hi"


def result(status: RunStatus, exit_code: int | None = None, **fields: Any) -> RunResult:
    return RunResult(id="r1", status=status, exit_code=exit_code, **fields)


# -- exit codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exit_code", "expected"),
    [
        (RunStatus.SUCCEEDED, 0, 0),
        (RunStatus.FAILED, 3, 3),
        (RunStatus.FAILED, None, 1),
        (RunStatus.FAILED, -9, 137),  # killed by SIGKILL: 128 + 9, as a shell reports it
        (RunStatus.FAILED, 300, 255),
        (RunStatus.INSTALL_FAILED, None, 122),
        (RunStatus.OUTPUT_EXCEEDED, None, 123),
        (RunStatus.TIMED_OUT, None, 124),
        (RunStatus.ERROR, None, 125),
        (RunStatus.CANCELLED, None, 130),
        (RunStatus.INTERRUPTED, None, 130),
        (RunStatus.MEMORY_EXCEEDED, 137, 137),
    ],
)
def test_exit_code_for_each_status(status: RunStatus, exit_code: int | None, expected: int) -> None:
    assert exit_code_for(result(status, exit_code)) == expected


def test_every_status_has_an_exit_code() -> None:
    own = {RunStatus.SUCCEEDED, RunStatus.FAILED}
    assert set(EXIT_CODES) | own == set(RunStatus)


# -- run --server ----------------------------------------------------------------------


class FakeClient:
    """Stands in for `ai_data_agent.client.Client`; answers with ``answer`` (or raises it)."""

    answer: RunResult | AiDataAgentError = result(RunStatus.SUCCEEDED, 0)
    stop_with: BaseException | None = None
    made: list[FakeClient] = []  # noqa: RUF012 -- reset by the fixture

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url
        self.token = token
        self.calls: list[RunRequest] = []
        self.downloaded: list[str] = []
        self.cancelled: list[str] = []
        self.closed = False
        FakeClient.made.append(self)

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closed = True

    def submit_request(self, request: RunRequest) -> str:
        self.calls.append(request)
        if isinstance(self.answer, AiDataAgentError):
            raise self.answer
        return self.answer.id

    def follow(self, run_id: str, on_output: Callable[[str, str], None]) -> RunResult:
        """As the daemon's event stream would: the output first, then the result."""
        assert isinstance(self.answer, RunResult) and run_id == self.answer.id
        for stream, text in (("stdout", self.answer.stdout), ("stderr", self.answer.stderr)):
            if text:
                on_output(stream, text)
        if self.stop_with is not None:  # a signal while the run is followed
            raise self.stop_with
        return self.answer

    def cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)

    def download_artifact(self, run_id: str, artifact: Artifact, directory: Path) -> Path:
        target = directory / artifact.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x" * artifact.size)
        self.downloaded.append(artifact.path)
        return target


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(FakeClient, "made", [])
    monkeypatch.setattr(FakeClient, "stop_with", None)
    monkeypatch.setattr(cli_common, "Client", FakeClient)

    def no_local_engine(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("run --server must not touch the local engine")

    monkeypatch.setattr(cli_run, "Executor", no_local_engine)
    return FakeClient


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def script(tmp_path: Any) -> str:
    path = tmp_path / "job.py"
    path.write_text("print('hello')\n", encoding="utf-8")
    return str(path)


def test_run_on_a_server_prints_the_output_and_exits_with_the_program_code(
    runner: CliRunner, fake_client: type[FakeClient], script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        fake_client, "answer", result(RunStatus.FAILED, 3, stdout="hello\n", stderr="oops\n")
    )
    out = runner.invoke(
        app,
        ["run", script, "--server", SERVER, *OPTIONS.split()],
    )
    assert out.exit_code == 3, out.output
    assert out.stdout == "hello\n"
    assert "oops\n" in out.stderr
    (client,) = fake_client.made
    assert client.base_url == SERVER and client.token is None and client.closed
    assert client.calls == [
        RunRequest(
            code="print('hello')\n",
            requirements=["six==1.17.0"],
            timeout_s=20.0,
            memory_mb=256,
            cpus=0.5,
            env={"GREETING": "hi"},
        )
    ]


def test_server_and_token_come_from_the_settings(
    runner: CliRunner, fake_client: type[FakeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_SERVER", SERVER)
    monkeypatch.setenv("AI_DATA_AGENT_TOKEN", "s3cret")
    out = runner.invoke(app, ["run", "-"], input="print(1)\n")
    assert out.exit_code == 0, out.output
    (client,) = fake_client.made
    assert (client.base_url, client.token) == (SERVER, "s3cret")
    assert client.calls[0].code == "print(1)\n"


def test_the_option_wins_over_the_setting(
    runner: CliRunner, fake_client: type[FakeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_SERVER", "http://elsewhere:1")
    runner.invoke(app, ["run", "-", "--server", SERVER], input="print(1)\n")
    assert fake_client.made[0].base_url == SERVER


def test_json_prints_exactly_one_result_document(
    runner: CliRunner, fake_client: type[FakeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = result(RunStatus.TIMED_OUT, None, stdout="partial\n", error="ran past its timeout")
    monkeypatch.setattr(fake_client, "answer", answer)
    out = runner.invoke(app, ["run", "-", "--server", SERVER, "--json"], input="while 1: pass\n")
    assert out.exit_code == 124, out.output
    document = json.loads(out.stdout)  # fails on anything but exactly one document
    assert RunResult.model_validate(document) == answer


@pytest.mark.parametrize(
    ("answer", "expected_code", "expected_err"),
    [
        (result(RunStatus.TIMED_OUT, error="the code ran past its timeout"), 124, "timed_out"),
        (result(RunStatus.MEMORY_EXCEEDED, 137, error="the memory limit"), 137, "memory_exceeded"),
        (
            result(
                RunStatus.INSTALL_FAILED,
                error="pip install failed",
                install=InstallReport(log_tail="ERROR: No matching distribution\n"),
            ),
            122,
            "No matching distribution",
        ),
        (result(RunStatus.SUCCEEDED, 0, stdout_truncated=True), 0, "output truncated"),
    ],
)
def test_outcomes_are_reported_as_on_the_local_engine(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    answer: RunResult,
    expected_code: int,
    expected_err: str,
) -> None:
    monkeypatch.setattr(fake_client, "answer", answer)
    out = runner.invoke(app, ["run", "-", "--server", SERVER], input="pass\n")
    assert out.exit_code == expected_code, out.output
    assert expected_err in out.stderr


@pytest.mark.parametrize(
    ("error", "expected_code"),
    [
        (RequestRejected(None, "timeout_s: 900 is above the server cap 600", status_code=400), 2),
        (RequestTooLarge(None, "body: larger than 2048 bytes", status_code=413), 2),
        (QueueFull("queue is full", status_code=429, retry_after=5), 125),
        (ServerUnreachable("cannot reach http://daemon.test:8000: ConnectError"), 125),
    ],
)
def test_client_errors_exit_with_a_message(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    error: AiDataAgentError,
    expected_code: int,
) -> None:
    monkeypatch.setattr(fake_client, "answer", error)
    out = runner.invoke(app, ["run", "-", "--server", SERVER], input="pass\n")
    assert out.exit_code == expected_code
    assert out.stdout == ""
    assert str(error) in " ".join(out.stderr.split())
    assert "Traceback" not in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "--index-url=http://evil.test/simple"], "pip options are not accepted"),
        (["-p", "six @ https://evil.test/six.whl"], "direct URL references are not accepted"),
        (["-p", "not a requirement!"], "is not a PEP 508 requirement"),
        (["-e", "PATH=/tmp"], "reserved for the sandbox"),
        (["-e", "NOEQUALS"], "expected NAME=VALUE"),
    ],
)
def test_bad_requests_exit_2_before_anything_is_sent(
    runner: CliRunner, fake_client: type[FakeClient], args: list[str], message: str
) -> None:
    out = runner.invoke(app, ["run", "-", "--server", SERVER, *args], input="pass\n")
    assert out.exit_code == 2
    assert message in " ".join(out.stderr.split())
    assert "Value error" not in out.stderr  # our words, not pydantic's wrapping
    assert fake_client.made == []


def test_allow_asks_for_exactly_those_hosts_and_excludes_network(
    runner: CliRunner, fake_client: type[FakeClient]
) -> None:
    allow = ["--allow", "files.example.com", "--allow", "*.s3.example.com:443"]
    out = runner.invoke(app, ["run", "-", "--server", SERVER, *allow], input="pass\n")
    assert out.exit_code == 0, out.output
    [request] = fake_client.made[0].calls
    assert request.network == EgressRequest(allow=("files.example.com", "*.s3.example.com:443"))
    out = runner.invoke(app, ["run", "-", "--server", SERVER, "--network", *allow], input="")
    assert out.exit_code == 2
    assert "--network and --allow exclude each other" in out.stderr
    assert len(fake_client.made) == 1  # nothing more was sent


def test_a_bad_requirements_file_names_the_line(
    runner: CliRunner, fake_client: type[FakeClient], tmp_path: Any
) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("six\n-r other.txt\n", encoding="utf-8")
    out = runner.invoke(app, ["run", "-", "--server", SERVER, "-r", str(reqs)], input="pass\n")
    assert out.exit_code == 2
    assert "line 2" in out.stderr and "pip options are not accepted" in out.stderr


def test_invalid_settings_are_reported_in_our_words(
    runner: CliRunner, fake_client: type[FakeClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_LOG_LEVEL", "chatty")
    out = runner.invoke(app, ["run", "-", "--server", SERVER], input="pass\n")
    assert out.exit_code == 125
    assert "invalid settings: AI_DATA_AGENT_LOG_LEVEL: unknown log level 'chatty'" in " ".join(
        out.stderr.split()
    )
    assert "Value error" not in out.stderr and "validation error" not in out.stderr
    assert fake_client.made == []


# -- serve -------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`serve` installs the daemon's log sinks; put loguru and logging back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:], root.level = handlers, level


def test_serve_refuses_an_exposed_address_without_tokens(
    runner: CliRunner, restore_logging: None
) -> None:
    out = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8000"])
    assert out.exit_code == 2, out.output
    reason = " ".join(out.stderr.split())
    assert "refusing to listen on 0.0.0.0 without API tokens" in reason
    assert "AI_DATA_AGENT_API_TOKENS" in reason
    assert "Traceback" not in out.output


def test_serve_passes_its_options_to_the_daemon(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Settings, str, int, bool]] = []

    def fake_serve(settings: Settings, host: str, port: int, insecure: bool) -> None:
        calls.append((settings, host, port, insecure))

    monkeypatch.setattr(server, "serve", fake_serve)
    monkeypatch.setenv("AI_DATA_AGENT_MAX_QUEUED_RUNS", "3")
    assert runner.invoke(app, ["serve"]).exit_code == 0
    out = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9000", "--insecure"])
    assert out.exit_code == 0, out.output
    assert [(host, port, insecure) for _, host, port, insecure in calls] == [
        ("127.0.0.1", 8000, False),
        ("0.0.0.0", 9000, True),
    ]
    assert calls[0][0].max_queued_runs == 3  # the settings come from the environment


def test_serve_exits_2_when_the_daemon_refuses_to_start(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(settings: Settings, host: str, port: int, insecure: bool) -> None:
        raise ConfigurationError(f"the daemon could not listen on {host}:{port}")

    monkeypatch.setattr(server, "serve", refuse)
    out = runner.invoke(app, ["serve", "--port", "8001"])
    assert out.exit_code == 2
    assert "the daemon could not listen on 127.0.0.1:8001" in out.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_serve_checks_the_port(runner: CliRunner, port: str) -> None:
    assert runner.invoke(app, ["serve", "--port", port]).exit_code == 2


def test_input_files_and_output_dir_through_a_server(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    data = tmp_path / "sales.csv"
    data.write_bytes(b"a,b\n")
    artifact = Artifact(path="charts/plot.png", size=3, sha256="0" * 64, media_type="image/png")
    answer = result(RunStatus.SUCCEEDED, 0).model_copy(update={"artifacts": [artifact]})
    monkeypatch.setattr(fake_client, "answer", answer)
    out = tmp_path / "out"

    outcome = runner.invoke(
        app,
        [
            "run",
            "-",
            "--server",
            SERVER,
            "--file",
            f"{data}:data/sales.csv",
            "--output-dir",
            str(out),
        ],
        input="print(1)\n",
    )

    assert outcome.exit_code == 0, outcome.output
    sent = fake_client.made[0].calls[0]
    assert [(f.path, f.data) for f in sent.files] == [("data/sales.csv", b"a,b\n")]
    assert fake_client.made[0].downloaded == ["charts/plot.png"]
    assert (out / "charts" / "plot.png").is_file()
    assert f"artifact: {out / 'charts' / 'plot.png'}" in outcome.output


@pytest.mark.parametrize("spec", ["missing.csv", "x.csv:../escape.csv", "x.csv:/abs.csv"])
def test_bad_input_files_exit_2(
    runner: CliRunner,
    fake_client: type[FakeClient],
    tmp_path: Path,
    spec: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.csv").write_text("1\n")
    outcome = runner.invoke(
        app, ["run", "-", "--server", SERVER, "--file", spec], input="print(1)\n"
    )
    assert outcome.exit_code == 2, outcome.output
    assert "--file" in outcome.output
    assert "Value error" not in outcome.output
    assert fake_client.made == []


# -- what a new user trips over ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env_token", "hint"),
    [
        ([], None, "the daemon wants a token: set AI_DATA_AGENT_TOKEN (or pass --token)"),
        (["--token", "wrong"], None, "the daemon does not accept this token"),
        ([], "wrong", "the daemon does not accept this token"),
    ],
)
def test_a_refused_token_exits_77_and_says_what_to_set(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env_token: str | None,
    hint: str,
) -> None:
    if env_token is not None:
        monkeypatch.setenv("AI_DATA_AGENT_TOKEN", env_token)
    monkeypatch.setattr(fake_client, "answer", Unauthorized("bad token", status_code=401))
    out = runner.invoke(app, ["run", "-", "--server", SERVER, *args], input="pass\n")
    assert out.exit_code == EXIT_AUTH == 77, out.output
    assert hint in " ".join(out.stderr.split())
    assert fake_client.made[0].token == (args[1] if args else env_token)


def test_run_help_names_the_token_option_and_its_variable(runner: CliRunner) -> None:
    out = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    text = " ".join(out.output.split())
    assert "--token TOKEN Bearer token for --server (default: the AI_DATA_AGENT_TOKEN" in text
    assert "(default: the AI_DATA_AGENT_SERVER variable)" in text
    assert "77" in text and "143" in text  # the exit codes a caller must expect


@pytest.mark.parametrize(
    "stop", [Stopped(signal.SIGTERM), Stopped(signal.SIGHUP), KeyboardInterrupt()]
)
def test_a_stop_signal_cancels_the_run_on_the_daemon_then_exits_128_plus_it(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    stop: KeyboardInterrupt,
) -> None:
    monkeypatch.setattr(fake_client, "stop_with", stop)
    out = runner.invoke(app, ["run", "-", "--server", SERVER], input="pass\n")
    expected = 128 + (stop.signum if isinstance(stop, Stopped) else signal.SIGINT)
    assert out.exit_code == expected, out.output
    assert fake_client.made[0].cancelled == ["r1"]
    assert "the run was cancelled" in out.stderr


def test_an_output_dir_that_is_a_file_is_refused_before_anything_runs(
    runner: CliRunner, fake_client: type[FakeClient], tmp_path: Path
) -> None:
    taken = tmp_path / "out"
    taken.write_text("not a directory")
    out = runner.invoke(
        app, ["run", "-", "--server", SERVER, "--output-dir", str(taken)], input="pass\n"
    )
    assert out.exit_code == 2, out.output
    assert "exists and is not a directory" in " ".join(out.stderr.split())
    assert fake_client.made == []  # nothing was sent


@pytest.mark.parametrize(
    ("local", "dest"),
    [
        ("./data//sales.csv", "data/sales.csv"),
        ("data/./sales.csv", "data/sales.csv"),
        ("../sales.csv", "sales.csv"),
        ("sales.csv", "sales.csv"),
    ],
)
def test_a_local_path_is_placed_at_its_normal_form_or_its_name(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    local: str,
    dest: str,
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sales.csv").write_text("a\n")
    (tmp_path / "sales.csv").write_text("a\n")
    monkeypatch.chdir(tmp_path / "data" if local.startswith("..") else tmp_path)
    out = runner.invoke(app, ["run", "-", "--server", SERVER, "--file", local], input="pass\n")
    assert out.exit_code == 0, out.output
    assert [f.path for f in fake_client.made[0].calls[0].files] == [dest]


def test_log_format_json_applies_to_the_cli_and_the_fallback_notice_is_said_once(
    runner: CliRunner,
    fake_client: type[FakeClient],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    restore_logging: None,
) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def submit_with_notices(self: FakeClient, request: RunRequest) -> str:
        logger.bind(once="image-fallback:a:b").warning("fallback_triggered: using b")
        logger.warning("said every time")
        return "r1"

    monkeypatch.setattr(fake_client, "submit_request", submit_with_notices)
    outputs = [runner.invoke(app, ["run", "-", "--server", SERVER], input="pass\n") for _ in "12"]
    lines = [
        [json.loads(line)["record"]["message"] for line in out.stderr.splitlines()]
        for out in outputs
    ]
    assert lines == [["fallback_triggered: using b", "said every time"], ["said every time"]]
