"""The one settings object (settings.py): environment parsing and checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ai_data_agent import settings as settings_module
from ai_data_agent.settings import DEFAULT_FALLBACK_IMAGE, DEFAULT_SANDBOX_IMAGE, Settings


def test_defaults_without_environment() -> None:
    assert not [n for n in os.environ if n.startswith("AI_DATA_AGENT_")]  # the autouse fixture
    s = Settings()
    assert s.sandbox_image == DEFAULT_SANDBOX_IMAGE == "python:3.12-slim"
    assert s.fallback_image == DEFAULT_FALLBACK_IMAGE
    assert s.allow_network is False
    assert s.log_level == "INFO"
    assert s.ca_bundle is None  # the autouse fixture hides this machine's bundle
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


def host_bundles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *present: str) -> list[Path]:
    """Three candidate system bundles under tmp_path, of which ``present`` exist."""
    candidates = [tmp_path / name for name in ("debian.crt", "rhel.crt", "alpine.pem")]
    for path in candidates:
        if path.name in present:
            path.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setattr(settings_module, "SYSTEM_CA_BUNDLES", tuple(candidates))
    return candidates


def test_the_first_system_bundle_that_exists_is_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    debian, rhel, alpine = host_bundles(monkeypatch, tmp_path, "rhel.crt", "alpine.pem")
    assert Settings().ca_bundle == rhel.resolve()
    alpine.unlink()
    rhel.unlink()
    debian.mkdir()  # a directory is no bundle
    assert Settings().ca_bundle is None


def test_ssl_cert_file_comes_first_when_it_names_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, rhel, _ = host_bundles(monkeypatch, tmp_path, "rhel.crt")
    named = tmp_path / "corporate.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(named))
    assert Settings().ca_bundle == rhel.resolve()  # named but missing: ignored
    named.write_text("x")
    assert Settings().ca_bundle == named.resolve()


def test_a_linked_system_bundle_is_resolved(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    target = tmp_path / "extracted" / "tls-ca-bundle.pem"
    target.parent.mkdir()
    target.write_text("x")
    link = tmp_path / "ca-bundle.crt"
    link.symlink_to(target)  # as RHEL's /etc/pki/tls/certs/ca-bundle.crt
    monkeypatch.setattr(settings_module, "SYSTEM_CA_BUNDLES", (link,))
    assert Settings().ca_bundle == target.resolve()  # what the engine mounts is the file


@pytest.mark.parametrize("value", ["none", "None", "NONE", " none "])
def test_none_turns_the_ca_bundle_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    host_bundles(monkeypatch, tmp_path, "debian.crt")
    monkeypatch.setenv("AI_DATA_AGENT_CA_BUNDLE", value)
    assert Settings().ca_bundle is None
    assert Settings(ca_bundle=None).ca_bundle is None


def test_empty_ca_bundle_means_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    debian, _, _ = host_bundles(monkeypatch, tmp_path, "debian.crt")
    monkeypatch.setenv("AI_DATA_AGENT_CA_BUNDLE", "")
    assert Settings().ca_bundle == debian.resolve()


def test_an_explicit_bundle_wins_over_the_system_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    host_bundles(monkeypatch, tmp_path, "debian.crt")
    mine = tmp_path / "proxy.pem"
    mine.write_text("x")
    monkeypatch.setenv("AI_DATA_AGENT_CA_BUNDLE", str(mine))
    assert Settings().ca_bundle == mine.resolve()


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
