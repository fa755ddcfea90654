"""A request's allow-list against the operator's (limits.py), its shape (models), and one
sandbox's checks (policy); what the executor makes of a granted one: test_driver.py."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from pydantic import ValidationError

from ai_data_agent.egress.policy import Budget, Caps, Policy
from ai_data_agent.egress.rules import parse_destination
from ai_data_agent.errors import EgressRefused, RequestRejected
from ai_data_agent.limits import resolve_run, resolve_session
from ai_data_agent.models import EgressRequest, RunRequest
from ai_data_agent.session_models import SessionRequest
from ai_data_agent.settings import Settings

OPERATOR = {
    "egress_allow": ["*.example.com:443", "files.test", "db.internal:5432", "203.0.113.7"],
    "egress_deny": ["secret.example.com"],
}


def settings(**values: Any) -> Settings:
    return Settings(**{**OPERATOR, **values})


def run(network: Any) -> RunRequest:
    return RunRequest(code="print(1)", network=network)


@pytest.mark.parametrize(
    "allow",
    [
        ["api.example.com:443"],
        ["*.s3.example.com:443", "files.test:8443"],
        ["files.test"],
        ["203.0.113.7:443"],
    ],
)
def test_a_subset_of_the_operators_list_is_granted(allow: list[str]) -> None:
    limits = resolve_run(run({"allow": allow}), settings())
    assert limits.egress == EgressRequest(allow=tuple(allow))
    assert limits.network is False  # no Docker network: the proxy is the only way out


@pytest.mark.parametrize(
    ("network", "field", "named"),
    [
        ({"allow": ["evil.test"]}, "network.allow", "evil.test is not on"),
        ({"allow": ["api.example.com"]}, "network.allow", "api.example.com is not on"),  # any port
        ({"allow": ["*.example.com"]}, "network.allow", "*.example.com is not on"),
        ({"allow": ["secret.example.com:443"]}, "network.allow", "on this server's egress deny"),
        ({"allow": ["10.0.0.5"]}, "network.allow", "10.0.0.5 is not on"),
        (
            {"allow": [], "publish": {"PG": "db.internal:5433"}},
            "network.publish.PG",
            "db.internal:5433",
        ),
    ],
)
def test_anything_more_is_refused_422_naming_the_host(
    network: dict[str, Any], field: str, named: str
) -> None:
    with pytest.raises(EgressRefused) as caught:
        resolve_run(run(network), settings())
    assert caught.value.field == field and named in caught.value.reason
    assert EgressRefused.http_status == 422 and isinstance(caught.value, RequestRejected)


def test_egress_is_refused_where_the_operator_allows_none() -> None:
    with pytest.raises(EgressRefused, match="egress is off on this server"):
        resolve_run(run({"allow": ["files.test"]}), Settings())


def test_unrestricted_network_keeps_its_meaning() -> None:
    with pytest.raises(RequestRejected, match="disabled on this server"):
        resolve_run(run(True), settings())
    limits = resolve_run(run(True), settings(allow_network=True))
    assert limits.network is True and limits.egress is None
    assert resolve_run(run(False), settings()).egress is None


def test_sessions_take_an_allow_list_and_never_unrestricted_network() -> None:
    limits = resolve_session(SessionRequest(network={"allow": ["files.test"]}), settings())
    assert limits.egress is not None and limits.egress.allow == ("files.test",)
    with pytest.raises(RequestRejected, match="by allow-list only"):
        resolve_session(SessionRequest(network=True), settings(allow_network=True))
    with pytest.raises(EgressRefused, match=r"evil\.test"):
        resolve_session(SessionRequest(network={"allow": ["evil.test"]}), settings())


@pytest.mark.parametrize(
    ("network", "location"),
    [
        ("yes", ("network",)),
        ({"allow": "files.test"}, ("network", "egress", "allow")),
        ({"allow": ["files.test:99999"]}, ("network", "egress", "allow", 0)),
        (
            {"allow": [], "publish": {"pg": "db:5432"}},
            ("network", "egress", "publish", "pg", "[key]"),
        ),
        ({"allow": [], "publish": {"PG": "db"}}, ("network", "egress", "publish", "PG")),
        ({"allow": [], "publish": {"PG": "*.db:1"}}, ("network", "egress", "publish", "PG")),
        ({"allow": [], "extra": 1}, ("network", "egress", "extra")),
        ({"allow": ["a.test"] * 65}, ("network", "egress", "allow")),
    ],
)
def test_the_shape_of_network_is_checked(network: Any, location: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        run(network)
    assert [e["loc"] for e in caught.value.errors()] == [location]


def test_the_settings_refuse_bad_rules_and_ranges() -> None:
    with pytest.raises(ValidationError, match="egress_allow"):
        Settings(egress_allow=["*.bad*"])
    with pytest.raises(ValidationError, match="egress_allow_cidrs"):
        Settings(egress_allow_cidrs=["10.0.0.0/33"])


def test_the_settings_read_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_DATA_AGENT_EGRESS_ALLOW", "files.test, *.example.com:443")
    monkeypatch.setenv("AI_DATA_AGENT_EGRESS_ALLOW_CIDRS", "203.0.113.0/24,10.1.0.0/16")
    s = Settings()
    assert s.egress_allow == ["files.test", "*.example.com:443"]
    assert s.egress_allow_cidrs == ["203.0.113.0/24", "10.1.0.0/16"]


def test_a_policy_connects_only_to_the_addresses_that_pass() -> None:
    policy = Policy.build(allow=["files.test"], networks=["203.0.113.0/24"])
    found = [ipaddress.ip_address(a) for a in ("10.0.0.5", "203.0.113.10", "169.254.169.254")]
    assert policy.usable_addresses("files.test", found) == ([found[1]], None)
    usable, reason = policy.usable_addresses("files.test", [found[0], found[2]])
    assert usable == [] and reason == "10.0.0.5 is a private address (an address of files.test)"
    assert policy.usable_addresses("files.test", []) == ([], "files.test does not resolve")
    assert policy.refuse_destination(parse_destination("files.test:1")) is None
    assert policy.refuse_destination(parse_destination("203.0.113.10:443")) == (
        "203.0.113.10:443 is not on the allow-list"  # an address must be listed itself
    )


def test_a_budget_counts_connections_and_bytes() -> None:
    budget = Budget(Caps(max_connections=1, max_bytes_out=10, max_bytes_in=100))
    assert budget.admit() is None
    assert budget.admit() == "the sandbox has 1 connections open, the most allowed"
    budget.release()
    assert budget.take("out", 10) and budget.take("in", 100)
    assert not budget.take("out", 1)
    assert budget.admit() == "the sandbox's egress byte cap (10 bytes out) is reached"
