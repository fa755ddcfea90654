"""The one settings object (settings.py): environment parsing and checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ai_data_agent.settings import DEFAULT_FALLBACK_IMAGE, DEFAULT_SANDBOX_IMAGE, Settings


def test_defaults_without_environment() -> None:
    assert not [n for n in os.environ if n.startswith("AI_DATA_AGENT_")]  # the autouse fixture
    s = Settings()
    assert s.sandbox_image == DEFAULT_SANDBOX_IMAGE == "python:3.12-slim"
    assert s.fallback_image == DEFAULT_FALLBACK_IMAGE
    assert s.allow_network is False
    assert s.log_level == "INFO"
    assert s.ca_bundle is None
    assert s.env_passthrough == []
    assert s.image_is_explicit is False


def test_env_prefix_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_MAX_TIMEOUT_S", "30")
    monkeypatch.setenv("AI_DATA_AGENT_DEFAULT_MEMORY_MB", "512")
    monkeypatch.setenv("AI_DATA_AGENT_ALLOW_NETWORK", "true")
    monkeypatch.setenv("AI_DATA_AGENT_OUTPUT_POLICY", "kill")
    monkeypatch.setenv("AI_DATA_AGENT_ENV_PASSTHROUGH", '["HTTPS_PROXY", "NO_PROXY"]')
    monkeypatch.setenv("AI_DATA_AGENT_PIP_INDEX_URL", "https://pypi.internal/simple")
    s = Settings()
    assert s.max_timeout_s == 30.0
    assert s.default_memory_mb == 512
    assert s.allow_network is True
    assert s.output_policy == "kill"
    assert s.env_passthrough == ["HTTPS_PROXY", "NO_PROXY"]
    assert s.pip_index_url == "https://pypi.internal/simple"


def test_unprefixed_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TIMEOUT_S", "30")
    monkeypatch.setenv("ALLOW_NETWORK", "true")
    s = Settings()
    assert s.max_timeout_s == 600.0
    assert s.allow_network is False


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_MAX_TIMEOUT_S", "30")
    assert Settings(max_timeout_s=45).max_timeout_s == 45.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AI_DATA_AGENT_MAX_TIMEOUT_S", "0"),
        ("AI_DATA_AGENT_MAX_TIMEOUT_S", "soon"),
        ("AI_DATA_AGENT_DEFAULT_MEMORY_MB", "16"),
        ("AI_DATA_AGENT_OUTPUT_POLICY", "explode"),
        ("AI_DATA_AGENT_STDOUT_LIMIT_BYTES", "10"),
        ("AI_DATA_AGENT_PIDS_LIMIT", "1"),
    ],
)
def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_unknown_arguments_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(max_timeout=30)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["LOG_LEVEL", "AI_DATA_AGENT_LOG_LEVEL"])
def test_log_level_from_either_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "debug")
    assert Settings().log_level == "DEBUG"


def test_log_level_argument_is_normalised() -> None:
    assert Settings(log_level="warning").log_level == "WARNING"


@pytest.mark.parametrize("level", ["verbose", "", "5"])
def test_unknown_log_level_is_rejected(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("LOG_LEVEL", level)
    with pytest.raises(ValidationError, match="log level"):
        Settings()


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a readable file"):
        Settings(ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(ValidationError, match="not a readable file"):
        Settings(ca_bundle=tmp_path)  # a directory is not a bundle


def test_ca_bundle_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AI_DATA_AGENT_CA_BUNDLE", "ca.pem")
    assert Settings().ca_bundle == bundle.resolve()
    assert Settings().ca_bundle.is_absolute()  # type: ignore[union-attr]


def test_empty_ca_bundle_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Makefile exports AI_DATA_AGENT_CA_BUNDLE empty where the host has no bundle.
    monkeypatch.setenv("AI_DATA_AGENT_CA_BUNDLE", "")
    assert Settings().ca_bundle is None


def test_image_is_explicit_when_set_by_argument() -> None:
    assert Settings(sandbox_image="python:3.11-slim").image_is_explicit is True
    # Even when it names the default: the operator chose it, so no silent fallback.
    assert Settings(sandbox_image=DEFAULT_SANDBOX_IMAGE).image_is_explicit is True


def test_image_is_explicit_when_set_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_SANDBOX_IMAGE", "registry.local/py:3.12")
    s = Settings()
    assert s.sandbox_image == "registry.local/py:3.12"
    assert s.image_is_explicit is True


def test_fallback_image_does_not_make_the_image_explicit() -> None:
    assert Settings(fallback_image="mine:latest").image_is_explicit is False


def test_passthrough_env_reads_the_environment_when_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("A_TOKEN", raising=False)
    monkeypatch.delenv("B_TOKEN", raising=False)
    s = Settings(env_passthrough=["A_TOKEN", "B_TOKEN"])
    assert s.passthrough_env() == {}
    monkeypatch.setenv("A_TOKEN", "1")
    assert s.passthrough_env() == {"A_TOKEN": "1"}
    monkeypatch.setenv("B_TOKEN", "2")
    assert s.passthrough_env() == {"A_TOKEN": "1", "B_TOKEN": "2"}
