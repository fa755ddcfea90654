"""Tenants in a cluster: what one API node made for a tenant, the other answers 404 to
another tenant; a token revoked through one node is refused by the other at once; the audit
log is the cluster's; a tenant's session quota holds whichever node it asks, and a close
through one node frees a slot the other gives at once; the CPU time a worker charges
refuses the tenant at the other node."""

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


def test_tenants_see_only_their_own_through_either_api_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0], max_sessions=2)
    secrets = {}
    with one.client() as admin:
        for name in ("a", "b"):
            assert admin.post("/v1/tenants", json={"name": name}).status_code == 201
            made = admin.post("/v1/tokens", json={"tenant": name, "name": f"{name}-1"})
            assert made.status_code == 201, made.text
            secrets[name] = made.json()["secret"]
    with as_(one, secrets["a"]) as a:
        run = a.post("/v1/runs", json={"code": "open('outputs/o.txt', 'w').write('a')"})
        assert run.status_code == 200 and run.json()["status"] == "succeeded", run.text
        session = a.post("/v1/sessions", json={})
        assert session.status_code == 201, session.text
        sid, rid = session.json()["id"], run.json()["id"]
        assert a.put(f"/v1/sessions/{sid}/files/f.txt", content=b"a").status_code == 201
    with as_(two, secrets["b"]) as b:
        for method, path in (
            ("GET", f"/v1/runs/{rid}"),
            ("GET", f"/v1/runs/{rid}/artifacts/o.txt"),
            ("GET", f"/v1/runs/{rid}/events"),
            ("GET", f"/v1/sessions/{sid}"),
            ("GET", f"/v1/sessions/{sid}/files/f.txt"),
            ("POST", f"/v1/sessions/{sid}/interrupt"),
            ("DELETE", f"/v1/sessions/{sid}"),
        ):
            assert b.request(method, path).status_code == 404, (method, path)
        assert b.get("/v1/sessions").json()["items"] == []
        assert b.get("/v1/runs").json()["total"] == 0
    with as_(two, secrets["a"]) as a_there:
        assert a_there.get(f"/v1/sessions/{sid}/files/f.txt").content == b"a"
        assert a_there.get(f"/v1/runs/{rid}").json()["tenant"] == "a"
    with two.client() as admin:
        listed = admin.get("/v1/sessions", params={"tenant": "a"}).json()["items"]
        assert [s["id"] for s in listed] == [sid]
        assert admin.get("/v1/runs", params={"tenant": "b"}).json()["total"] == 0
        # Revoked through one node: refused by the other at its next request.
        with one.client() as admin_one:
            assert admin_one.delete("/v1/tokens/b-1").status_code == 200
        with as_(two, secrets["b"]) as b:
            assert b.get("/v1/runs").status_code == 401
        entries = admin.get("/v1/audit", params={"tenant": "b", "limit": 100}).json()["items"]
        outcomes = {(e["action"], e["status"]) for e in entries}
        assert {("run.get", 404), ("session.close", 404), ("run.list", 401)} <= outcomes
        created = admin.get("/v1/audit", params={"action": "session.create"}).json()["items"]
        assert [(e["tenant"], e["object_id"]) for e in created] == [("a", sid)]
        with as_(one, secrets["a"]) as a:
            assert a.delete(f"/v1/sessions/{sid}").json()["status"] == "closed"


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


def test_the_cpu_a_workers_run_used_refuses_the_tenant_at_the_other_api_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    one, two = cluster.api(), cluster.api()
    cluster.worker(engines[0])
    with one.client() as admin:
        made = admin.post("/v1/tenants", json={"name": "c", "quotas": {"cpu_seconds_per_hour": 1}})
        assert made.status_code == 201, made.text
        token = admin.post("/v1/tokens", json={"tenant": "c", "name": "c-1"})
        assert token.status_code == 201, token.text
        secret = token.json()["secret"]
    burn = "import time\nwhile time.process_time() < 1.2:\n    pass"
    with as_(one, secret) as c_one, as_(two, secret) as c_two:
        ran = c_one.post("/v1/runs", json={"code": burn})
        assert ran.status_code == 200 and ran.json()["status"] == "succeeded", ran.text
        assert ran.json()["cpu_seconds"] >= 1.2, ran.json()["cpu_seconds"]
        for refused in (
            c_two.post("/v1/runs", json={"code": "1"}),
            c_two.post("/v1/sessions", json={}),
        ):
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["quota"], error["limit"]) == (
                "quota_exceeded",
                "cpu_seconds_per_hour",
                1,
            )
            assert error["used"] >= 1.2 and int(refused.headers["retry-after"]) > 3500
