"""The daemon's entry point: the bind policy, and refusing to start without tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.service.serving import check_bind_policy, is_loopback
from ai_data_agent.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com", "my-host"])
def test_other_hosts_are_exposed(host: str) -> None:
    assert not is_loopback(host)


def test_exposed_without_tokens_is_refused_with_a_reason() -> None:
    with pytest.raises(
        ConfigurationError, match=r"refusing to listen on 0\.0\.0\.0 without API tokens"
    ):
        check_bind_policy(Settings(), "0.0.0.0", insecure=False)


def test_exposed_is_allowed_with_tokens_or_insecure(tmp_path: Path) -> None:
    check_bind_policy(Settings(api_tokens=["t"]), "0.0.0.0", insecure=False)
    token_file = tmp_path / "tokens"
    token_file.write_text("t\n")
    check_bind_policy(Settings(api_token_file=token_file), "0.0.0.0", insecure=False)
    check_bind_policy(Settings(), "0.0.0.0", insecure=True)
    check_bind_policy(Settings(), "127.0.0.1", insecure=False)


def test_unreadable_token_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(api_token_file=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="cannot read the token file"):
        check_bind_policy(settings, "127.0.0.1", insecure=False)


def test_module_entry_point_refuses_and_says_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_DATA_AGENT_")}
    env["AI_DATA_AGENT_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ai_data_agent.service", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "without API tokens" in done.stderr
    assert "--insecure" in done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was created
