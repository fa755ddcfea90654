"""A tenant's own egress allow-list narrows the server's, for its runs and sessions alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fakes import make_settings, running_service

pytestmark = pytest.mark.anyio


async def test_a_tenant_reaches_only_hosts_on_its_own_list(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, egress_allow=["*.test"], allow_network=True)
    async with running_service(settings) as svc:
        admin = svc.client
        add = {"name": "team-a", "quotas": {"egress_allow": ["files.test"]}}
        assert (await admin.post("/v1/tenants", json=add)).status_code == 201
        made = await admin.post("/v1/tokens", json={"tenant": "team-a", "name": "a-1"})
        as_a = {"Authorization": f"Bearer {made.json()['secret']}"}

        def run(network: object) -> dict[str, object]:
            return {"code": "print(1)", "network": network, "wait": False}

        refused = await admin.post("/v1/runs", json=run({"allow": ["db.test"]}), headers=as_a)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["message"] == (
            "network.allow: db.test is not on tenant team-a's egress allow-list"
        )
        everything = await admin.post("/v1/runs", json=run(True), headers=as_a)
        assert everything.status_code == 422 and "team-a" in everything.text
        session = await admin.post(
            "/v1/sessions", json={"network": {"allow": ["db.test"]}}, headers=as_a
        )
        assert session.status_code == 422 and "tenant team-a" in session.text, session.text
        allowed = await admin.post("/v1/runs", json=run({"allow": ["files.test"]}), headers=as_a)
        assert allowed.status_code == 202, allowed.text
        # The admin tenant has no list of its own: the server's alone applies.
        mine = await admin.post("/v1/runs", json=run({"allow": ["db.test"]}))
        assert mine.status_code == 202, mine.text
