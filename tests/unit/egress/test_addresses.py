"""Which addresses are reachable: global ones and operator-listed ranges, IPv6 forms judged by the
IPv4 address they carry."""

from __future__ import annotations

import ipaddress

import pytest

from ai_data_agent.egress.addresses import embedded_ipv4, refusal

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("169.254.169.254", "a link-local address (cloud metadata)"),
        ("169.254.1.1", "a link-local address"),
        ("100.64.0.1", "a shared address (carrier-grade NAT)"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address (not globally routable)"),
        ("203.0.113.7", "a reserved address (not globally routable)"),  # documentation
        ("198.18.0.1", "a reserved address (not globally routable)"),  # benchmarking
        ("255.255.255.255", "a reserved address (not globally routable)"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fd00:ec2::254", "a link-local address (cloud metadata)"),
        ("fc00::1", "a private address"),
        ("fec0::1", "a private address"),
        ("ff02::1", "a multicast address"),
        ("2001:db8::1", "a reserved address (not globally routable)"),
        # IPv6 forms that carry an IPv4 address: judged by it.
        ("::ffff:10.0.0.5", "a private address"),
        ("::ffff:169.254.169.254", "a link-local address (cloud metadata)"),
        ("::ffff:0:127.0.0.1", "a loopback address"),  # IPv4-translated
        ("::10.0.0.5", "a private address"),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", "a link-local address (cloud metadata)"),  # NAT64
        ("64:ff9b:1::10.0.0.5", "a private address"),  # local-use NAT64
        ("2002:a00:5::1", "a private address"),  # 6to4 of 10.0.0.5
        ("2002:7f00:1::", "a loopback address"),
        ("fe80::1%2", "a scoped address"),
    ],
)
def test_non_global_addresses_are_refused(address: str, kind: str) -> None:
    assert refusal(ip(address)) == kind


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101"],
)
def test_global_addresses_pass(address: str) -> None:
    assert refusal(ip(address)) is None


def test_operator_ranges_make_addresses_reachable_and_nothing_else() -> None:
    listed = [ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("10.1.0.0/16")]
    assert refusal(ip("203.0.113.7"), listed) is None
    assert refusal(ip("10.1.2.3"), listed) is None
    assert refusal(ip("::ffff:10.1.2.3"), listed) is None  # judged by the IPv4 it carries
    assert refusal(ip("10.2.0.1"), listed) == "a private address"
    assert refusal(ip("169.254.169.254"), listed) == "a link-local address (cloud metadata)"


def test_the_embedded_ipv4_of_each_form() -> None:
    v6 = ipaddress.IPv6Address
    four = ip("192.0.2.33")
    assert embedded_ipv4(v6("::ffff:192.0.2.33")) == four
    assert embedded_ipv4(v6("64:ff9b::192.0.2.33")) == four
    assert embedded_ipv4(v6("2002:c000:221::1")) == four
    assert embedded_ipv4(v6("2001:0:4136:e378:8000:63bf:3fff:fdd2")) == ip("192.0.2.45")  # Teredo
    assert embedded_ipv4(v6("2606:4700::1")) is None
    assert embedded_ipv4(v6("::1")) is None
