"""A tenant's session quota across two API nodes: its third session is refused with
``429 quota_exceeded`` whichever node it asks, and a close through one node frees a slot
that the other gives at once."""

from __future__ import annotations

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .nodes import Cluster, Node

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]


def as_(node: Node, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {secret}"}, timeout=120
    )


def test_a_tenants_session_quota_holds_across_api_nodes(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0], max_sessions=4)
    with one.client() as admin:
        quotas = {"concurrent_sessions": 2}
        made = admin.post("/v1/tenants", json={"name": "a", "quotas": quotas})
        assert made.status_code == 201, made.text
        token = admin.post("/v1/tokens", json={"tenant": "a", "name": "a-1"})
        assert token.status_code == 201, token.text
        secret = token.json()["secret"]
    with as_(one, secret) as a_one, as_(two, secret) as a_two:
        first = a_one.post("/v1/sessions", json={})
        second = a_two.post("/v1/sessions", json={})
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        for a in (a_one, a_two):
            refused = a.post("/v1/sessions", json={})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) > 0
            error = refused.json()["error"]
            assert (error["code"], error["quota"], error["limit"], error["used"]) == (
                "quota_exceeded",
                "concurrent_sessions",
                2,
                2,
            )
        closed = a_two.delete(f"/v1/sessions/{first.json()['id']}")
        assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
        third = a_one.post("/v1/sessions", json={})
        assert third.status_code == 201, third.text
        for made in (second, third):
            assert a_one.delete(f"/v1/sessions/{made.json()['id']}").status_code == 200
