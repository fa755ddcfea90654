"""Tenants in a cluster: what one API node made for a tenant, the other answers 404 to
another tenant; a token revoked through one node is refused by the other at once; the audit
log is the cluster's."""

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
