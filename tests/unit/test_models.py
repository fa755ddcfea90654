"""The contract: `RunRequest` validation and resolution, `RunResult` serialisation (models.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ai_data_agent.errors import RequestRejected
from ai_data_agent.limits import resolve_run
from ai_data_agent.models import (
    EnvironmentInfo,
    InstallReport,
    Limits,
    PackageInfo,
    RunRequest,
    RunResult,
    RunStatus,
    Timings,
    parse_requirements_text,
)
from ai_data_agent.settings import Settings

# -- requirements -----------------------------------------------------------------


@pytest.mark.parametrize(
    "good",
    [
        "six",
        "pandas==2.2.2",
        "requests[socks]>=2.31,<3",
        'tomli; python_version < "3.11"',
        "  numpy  ",
        "zope.interface~=6.0",
    ],
)
def test_plain_requirements_are_accepted(good: str) -> None:
    assert RunRequest(code="", requirements=[good]).requirements == [good.strip()]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("-r x", "pip options"),
        ("-rother.txt", "pip options"),
        ("--index-url=https://evil.example/simple", "pip options"),
        ("--extra-index-url https://evil.example", "pip options"),
        ("-e .", "pip options"),
        ("pkg @ https://x.example/pkg.whl", "direct URL"),
        ("pkg @ file:///etc/passwd", "direct URL"),
        ("git+https://github.com/user/repo.git", "PEP 508"),
        ("./local", "PEP 508"),
        ("/abs/path/pkg.tar.gz", "PEP 508"),
        ("${VAR}", "PEP 508"),
        ("six\x00", "control characters"),
        ("six\nrequests", "control characters"),
        ("", "empty requirement"),
        ("   ", "empty requirement"),
    ],
)
def test_bad_requirements_are_rejected(bad: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        RunRequest(code="", requirements=[bad])


def test_over_long_requirement_is_rejected() -> None:
    with pytest.raises(ValidationError):
        RunRequest(code="", requirements=["a" * 201])
    assert RunRequest(code="", requirements=["a" * 200]).requirements == ["a" * 200]


def test_the_bad_requirement_is_named_by_index() -> None:
    with pytest.raises(ValidationError) as info:
        RunRequest(code="", requirements=["six", "-r other.txt"])
    (error,) = info.value.errors()
    assert error["loc"] == ("requirements", 1)
    assert "pip options are not accepted" in error["msg"]


# -- env -----------------------------------------------------------------------------


def test_plain_env_is_accepted() -> None:
    env = {"GREETING": "hi", "_private": "", "A1": "x=y"}
    assert RunRequest(code="", env=env).env == env


@pytest.mark.parametrize(
    "name", ["", "1ABC", "A-B", "A B", "A=B", "\u00e9t\u00e9", "A\x00", "X" * 129]
)
def test_invalid_env_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid variable name"):
        RunRequest(code="", env={name: "x"})


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "pythonpath",
        "HOME",
        "PATH",
        "PIP_INDEX_URL",
        "pip_extra_index_url",
        "UV_INDEX_URL",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "HTTPS_PROXY",
        "AI_DATA_AGENT_OUTPUTS",
        "MPLBACKEND",
    ],
)
def test_reserved_env_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError, match="reserved for the sandbox"):
        RunRequest(code="", env={name: "x"})


def test_env_value_with_nul_is_rejected() -> None:
    with pytest.raises(ValidationError, match="NUL"):
        RunRequest(code="", env={"A": "x\x00y"})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        RunRequest.model_validate({"code": "", "image": "evil:latest"})


@pytest.mark.parametrize(
    "field", [{"timeout_s": 0}, {"timeout_s": -1}, {"memory_mb": 32}, {"cpus": 0}, {"cpus": 65}]
)
def test_always_wrong_limits_are_rejected(field: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RunRequest(code="", **field)


# -- resolve ---------------------------------------------------------------------------


def test_resolve_fills_in_defaults() -> None:
    settings = Settings(default_timeout_s=30, default_memory_mb=512, default_cpus=0.5)
    assert resolve_run(RunRequest(code=""), settings) == Limits(
        timeout_s=30, memory_mb=512, cpus=0.5, network=False
    )


def test_resolve_defaults_never_exceed_caps() -> None:
    settings = Settings(default_timeout_s=900, max_timeout_s=600, default_cpus=4, max_cpus=2)
    resolved = resolve_run(RunRequest(code=""), settings)
    assert resolved.timeout_s == 600
    assert resolved.cpus == 2


def test_resolve_keeps_values_within_caps() -> None:
    settings = Settings(max_timeout_s=100, max_memory_mb=4096, max_cpus=2)
    request = RunRequest(code="", timeout_s=100, memory_mb=1024, cpus=1.5)
    assert resolve_run(request, settings) == Limits(
        timeout_s=100, memory_mb=1024, cpus=1.5, network=False
    )


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"timeout_s": 601}, "timeout_s"),
        ({"memory_mb": 4096}, "memory_mb"),
        ({"cpus": 2}, "cpus"),
    ],
)
def test_resolve_rejects_values_above_caps(request_kwargs: dict[str, float], field: str) -> None:
    settings = Settings(max_timeout_s=600, max_memory_mb=2048, max_cpus=1)
    with pytest.raises(RequestRejected) as info:
        resolve_run(RunRequest(code="", **request_kwargs), settings)
    assert info.value.field == field
    assert "above the server cap" in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def test_resolve_refuses_network_unless_allowed() -> None:
    with pytest.raises(RequestRejected) as info:
        resolve_run(RunRequest(code="", network=True), Settings())
    assert info.value.field == "network"
    assert (
        resolve_run(RunRequest(code="", network=True), Settings(allow_network=True)).network is True
    )


def test_resolve_checks_sizes() -> None:
    settings = Settings(
        max_code_bytes=10, max_requirements=1, max_env_vars=1, max_env_value_bytes=3
    )
    cases = [
        (RunRequest(code="\u20ac" * 4), "code"),  # 12 bytes, 4 characters
        (RunRequest(code="a\x00"), "code"),
        (RunRequest(code="", requirements=["a", "b"]), "requirements"),
        (RunRequest(code="", env={"A": "1", "B": "2"}), "env"),
        (RunRequest(code="", env={"A": "abcd"}), "env.A"),
    ]
    for request, field in cases:
        with pytest.raises(RequestRejected) as info:
            resolve_run(request, settings)
        assert info.value.field == field


# -- parse_requirements_text ---------------------------------------------------------------


def test_parse_requirements_text_drops_comments_and_blank_lines() -> None:
    text = "# data stack\n\npandas==2.2.2  # pinned\n   \nnumpy\n  # indented comment\n"
    assert parse_requirements_text(text) == ["pandas==2.2.2", "numpy"]


def test_parse_requirements_text_empty() -> None:
    assert parse_requirements_text("") == []
    assert parse_requirements_text("# nothing\n\n") == []


def test_parse_requirements_text_tab_before_comment() -> None:
    assert parse_requirements_text("six\t# pinned by ops\n") == ["six"]


@pytest.mark.parametrize(
    ("text", "line_number"),
    [
        ("six\n-r other.txt\n", 2),
        ("# comment\n\n--index-url https://evil.example/simple\nsix\n", 3),
        ("-e git+https://x/y.git\n", 1),
        ("six\nnumpy\npkg @ https://x/pkg.whl\n", 3),
        ("six\n--hash=sha256:abc\n", 2),
    ],
)
def test_parse_requirements_text_rejects_options_naming_the_line(
    text: str, line_number: int
) -> None:
    with pytest.raises(ValueError, match=f"^line {line_number}: "):
        parse_requirements_text(text)


# -- RunResult -----------------------------------------------------------------------------


def test_run_result_round_trips_through_json() -> None:
    result = RunResult(
        id="r1",
        status=RunStatus.TIMED_OUT,
        exit_code=-9,
        stdout="caf\u00e9\n",
        stderr="\ufffd",
        stdout_truncated=True,
        timings=Timings(install_s=1.5, execute_s=2.25, total_s=4.0),
        install=InstallReport(
            requirements=["six"], packages=[PackageInfo(name="six", version="1.16.0")]
        ),
        environment=EnvironmentInfo(uid=1000, sandbox_removed=True, mismatches=["HOME: x"]),
        image="python:3.12-slim",
        error="the code ran past its timeout",
    )
    text = result.model_dump_json()
    assert '"status":"timed_out"' in text
    again = RunResult.model_validate_json(text)
    assert again == result
    assert again.status is RunStatus.TIMED_OUT


def test_run_result_defaults() -> None:
    result = RunResult(id="x", status=RunStatus.ERROR)
    assert (result.stdout, result.stderr, result.exit_code, result.error) == ("", "", None, None)
    assert (result.install.installer, result.install.mode) == (None, None)  # nothing installed
    assert RunResult.model_validate_json(result.model_dump_json()) == result


def test_run_status_values_are_stable() -> None:
    assert {s.value for s in RunStatus} == {
        "succeeded",
        "failed",
        "timed_out",
        "memory_exceeded",
        "install_failed",
        "output_exceeded",
        "cancelled",
        "interrupted",
        "error",
    }
