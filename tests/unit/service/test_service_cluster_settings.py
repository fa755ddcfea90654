"""Cluster settings and the database connection string, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError
from typer.testing import CliRunner

from ai_data_agent.cli import app
from ai_data_agent.errors import ConfigurationError
from ai_data_agent.service.cluster.db import conninfo
from ai_data_agent.settings import Settings

URL = "postgresql://ai_data_agent_worker@db.internal:5432/ai_data_agent"


def test_sqlite_is_the_default() -> None:
    assert not Settings().clustered
    assert Settings(database_url=URL).clustered


def test_only_postgresql_urls_and_a_heartbeat_well_inside_the_lease() -> None:
    with pytest.raises(ValidationError, match="postgresql://"):
        Settings(database_url="mysql://x@y/z")
    with pytest.raises(ValidationError, match="at most half"):
        Settings(database_url=URL, lease_timeout_s=4, heartbeat_interval_s=3)


def test_tls_and_the_password_file_are_passed_to_libpq(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    settings = Settings(
        database_url=URL,
        database_password_file=secret,
        database_sslmode="verify-full",
        database_sslrootcert=tmp_path / "ca.crt",
    )
    params = conninfo_to_dict(conninfo(settings, role="worker"))
    assert params["host"] == "db.internal" and params["user"] == "ai_data_agent_worker"
    assert params["password"] == "s3cret"
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(tmp_path / "ca.crt")
    assert params["application_name"] == "ai-data-agent-worker"
    assert params["keepalives"] == "1"


def test_an_unreadable_password_file_says_so(tmp_path: Path) -> None:
    settings = Settings(database_url=URL, database_password_file=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="password file"):
        conninfo(settings, role="api")


def test_the_worker_and_with_worker_need_a_database_url() -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["worker"])
    assert out.exit_code == 2 and "AI_DATA_AGENT_DATABASE_URL" in out.output
    out = runner.invoke(app, ["serve", "--with-worker"])
    assert out.exit_code == 2 and "AI_DATA_AGENT_DATABASE_URL" in out.output
