"""The allow- and deny-list syntax, matching, and the subset test a request must pass."""

from __future__ import annotations

import ipaddress

import pytest

from ai_data_agent.egress.rules import (
    Destination,
    Rule,
    RuleList,
    parse_destination,
    parse_host,
    parse_rule,
)


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("example.com", "name", "example.com", None),
        ("Example.COM.", "name", "example.com", None),
        ("example.com:443", "name", "example.com", 443),
        ("*.example.com", "suffix", "example.com", None),
        ("*.example.com:5432", "suffix", "example.com", 5432),
        ("*", "any", None, None),
        ("*:443", "any", None, 443),
        ("203.0.113.7", "ip", ipaddress.ip_address("203.0.113.7"), None),
        ("203.0.113.7:80", "ip", ipaddress.ip_address("203.0.113.7"), 80),
        ("[2001:db8::1]:443", "ip", ipaddress.ip_address("2001:db8::1"), 443),
        ("2001:db8::1", "ip", ipaddress.ip_address("2001:db8::1"), None),
        ("bücher.example", "name", "xn--bcher-kva.example", None),
        ("_dmarc.example.com", "name", "_dmarc.example.com", None),
    ],
)
def test_rules_parse(text: str, kind: str, host: object, port: int | None) -> None:
    rule = parse_rule(text)
    assert (rule.kind, rule.host, rule.port) == (kind, host, port)
    assert parse_rule(str(rule)) == rule  # str() writes it back in the same syntax


@pytest.mark.parametrize(
    "text",
    [
        "",
        "exa mple.com",
        "example.com:0",
        "example.com:65536",
        "example.com:http",
        "*example.com",
        "api.*.example.com",
        "*.203.0.113.7",
        "-bad.example.com",
        "127.1",  # an address in a short form is neither a name nor an address
        "2130706433",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "a" * 64 + ".example.com",
    ],
)
def test_bad_rules_are_refused_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="'"):
        parse_rule(text)


def test_a_name_rule_matches_that_name_only() -> None:
    rule = parse_rule("example.com")
    assert rule.matches("example.com", 443)
    assert rule.matches("example.com", 5432)
    assert not rule.matches("api.example.com", 443)
    assert not rule.matches("example.com.evil.test", 443)
    assert not rule.matches("notexample.com", 443)


def test_a_wildcard_matches_subdomains_at_any_depth_but_not_the_apex() -> None:
    rule = parse_rule("*.example.com:443")
    assert rule.matches("api.example.com", 443)
    assert rule.matches("a.b.example.com", 443)
    assert not rule.matches("example.com", 443)
    assert not rule.matches("api.example.com", 80)
    assert not rule.matches("evilexample.com", 443)


def test_addresses_match_only_a_rule_that_names_them() -> None:
    address = ipaddress.ip_address("203.0.113.7")
    assert not parse_rule("*").matches(address, 443)
    assert not parse_rule("*.example.com").matches(address, 443)
    assert parse_rule("203.0.113.7").matches(address, 443)
    assert not parse_rule("203.0.113.8").matches(address, 443)
    assert parse_rule("*").matches("anything.example", 1)


@pytest.mark.parametrize(
    ("operator", "request_rule", "covered"),
    [
        ("example.com", "example.com", True),
        ("example.com", "example.com:443", True),
        ("example.com:443", "example.com", False),  # any port is more than 443
        ("example.com:443", "example.com:80", False),
        ("example.com", "api.example.com", False),
        ("*.example.com", "api.example.com:443", True),
        ("*.example.com", "*.api.example.com", True),
        ("*.example.com", "*.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.api.example.com", "*.example.com", False),
        ("*", "anything.example", True),
        ("*", "*.example.com", True),
        ("*", "203.0.113.7", False),
        ("api.example.com", "*", False),
        ("203.0.113.7", "203.0.113.7:443", True),
        ("203.0.113.7", "203.0.113.8", False),
        ("*.example.com", "203.0.113.7", False),
    ],
)
def test_covers(operator: str, request_rule: str, covered: bool) -> None:
    assert parse_rule(operator).covers(parse_rule(request_rule)) is covered


def test_a_rule_list_reports_what_it_does_not_cover() -> None:
    allowed = RuleList.parse(["*.example.com:443", "files.test"])
    asked = [parse_rule(t) for t in ("api.example.com:443", "files.test:8443", "evil.test")]
    assert [str(r) for r in allowed.uncovered(asked)] == ["evil.test"]
    assert allowed.matches("files.test", 1) and not allowed.matches("evil.test", 443)
    assert not RuleList() and str(allowed) == "*.example.com:443, files.test"


def test_destinations() -> None:
    assert parse_destination("db.test:5432") == Destination("db.test", 5432)
    assert str(parse_destination("[2001:db8::1]:5432")) == "[2001:db8::1]:5432"
    assert parse_destination("files.test", default_port=80).port == 80
    with pytest.raises(ValueError, match="a port is needed"):
        parse_destination("db.test")
    assert Rule.exactly(parse_destination("db.test:5432")) == parse_rule("db.test:5432")
    assert parse_host("[::1]") == ipaddress.ip_address("::1")
