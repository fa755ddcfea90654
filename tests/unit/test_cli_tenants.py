"""``ai-data-agent tenant``, ``token`` and ``audit`` on this host's stores (no daemon)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ai_data_agent.cli import app
from ai_data_agent.service.auth import token_digest
from ai_data_agent.service.tenant_store import TenantStore


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("AI_DATA_AGENT_DATA_DIR", str(tmp_path))
    return CliRunner()


def test_tenants_and_tokens_on_the_data_dir(cli: CliRunner, tmp_path: Path) -> None:
    added = cli.invoke(app, ["tenant", "add", "team-a", "--concurrent-sessions", "2"])
    assert added.exit_code == 0 and added.stdout.strip() == "team-a", added.output
    made = cli.invoke(app, ["token", "new", "team-a", "ci", "--expires-in", "60"])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("ada_") and "shown this once" in made.stderr
    store = TenantStore(tmp_path / "tenants.sqlite3")
    store.open()
    found = store.token(token_digest(secret))
    store.close()
    assert found is not None and found[0].name == "ci" and found[1].quotas.concurrent_sessions == 2
    changed = cli.invoke(
        app, ["tenant", "set", "team-a", "--concurrent-sessions", "none", "--queued-runs", "5"]
    )
    assert changed.exit_code == 0 and changed.stdout.strip() == "queued_runs=5", changed.output
    listed = cli.invoke(app, ["token", "ls", "--json"])
    [token] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert token["name"] == "ci" and "secret" not in token and token["expires_at"]
    assert cli.invoke(app, ["token", "revoke", "ci"]).exit_code == 0
    entries = cli.invoke(app, ["audit", "--json"]).stdout.splitlines()
    actions = [json.loads(line)["action"] for line in entries]
    assert actions == ["token.revoke", "tenant.set", "token.new", "tenant.add"]
    assert all(json.loads(line)["client"] == "cli" for line in entries)


def test_refusals_say_why(cli: CliRunner) -> None:
    bad = cli.invoke(app, ["tenant", "add", "Bad Name!"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: name must be "), bad.stderr
    assert "pydantic" not in bad.stderr and "validation error" not in bad.stderr
    assert cli.invoke(app, ["tenant", "add", "a", "--queued-runs", "many"]).exit_code == 2
    assert cli.invoke(app, ["token", "new", "nobody", "t"]).exit_code == 2
    removed = cli.invoke(app, ["tenant", "rm", "admin"])
    assert removed.exit_code == 2 and "built-in" in removed.stderr
    assert cli.invoke(app, ["token", "revoke", "never"]).exit_code == 2
