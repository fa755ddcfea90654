"""Where an API node tells workers to reach it: the setting, and its default from the bind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ai_data_agent.service.serving import with_advertise_url
from ai_data_agent.settings import Settings

URL = "postgresql://ai_data_agent_api@db.internal:5432/ai_data_agent"


@pytest.mark.parametrize(
    ("host", "advertised"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("10.0.0.5", "http://10.0.0.5:8000"),
        ("api-1.internal", "http://api-1.internal:8000"),
        ("::1", "http://[::1]:8000"),
        ("[fd00::5]", "http://[fd00::5]:8000"),
        ("0.0.0.0", None),  # every address: which one would a worker use?
        ("::", None),
        ("", None),
    ],
)
def test_the_default_is_the_bound_address_unless_it_is_a_wildcard(
    host: str, advertised: str | None
) -> None:
    settings = with_advertise_url(Settings(database_url=URL), host, 8000)
    assert settings.advertise_url == advertised


def test_a_configured_url_wins_and_one_node_advertises_nothing() -> None:
    chosen = Settings(database_url=URL, advertise_url="https://api-1.internal/")
    assert chosen.advertise_url == "https://api-1.internal"
    assert with_advertise_url(chosen, "127.0.0.1", 8000).advertise_url == "https://api-1.internal"
    assert with_advertise_url(Settings(), "127.0.0.1", 8000).advertise_url is None


@pytest.mark.parametrize("bad", ["10.0.0.5:8000", "ftp://10.0.0.5", "http://", "http://h/?a=1"])
def test_an_advertised_url_must_be_http_with_a_host(bad: str) -> None:
    with pytest.raises(ValidationError, match="http"):
        Settings(database_url=URL, advertise_url=bad)
