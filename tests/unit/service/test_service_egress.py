"""``network: {"allow": [...]}`` over HTTP: admitted against the operator's list (422 naming the
host otherwise), passed to the executor, and counted in /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_fakes import assert_error, make_settings, running_service

from ai_data_agent.egress.log import EgressEvent
from ai_data_agent.service.metrics import ServiceMetrics

pytestmark = pytest.mark.anyio


async def test_an_allow_list_beyond_the_operators_is_refused_422_naming_the_host(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, egress_allow=["files.test", "*.example.com:443"])
    async with running_service(settings) as svc:
        for allow in (["files.test", "evil.test"], ["api.example.com"]):
            body = {"code": "x", "network": {"allow": allow}}
            response = await svc.client.post("/v1/runs", json=body)
            message = assert_error(response, 422, "invalid_request")
            assert (
                message == f"network.allow: {allow[-1]} is not on this server's egress allow-list"
            )
        assert svc.executor.started == []


async def test_a_granted_allow_list_reaches_the_executor(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, egress_allow=["files.test"])
    network = {"allow": ["files.test:443"], "publish": {"PG": "files.test:5432"}}
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x", "network": network})
        assert response.status_code == 200, response.text
        [limits] = svc.executor.limits.values()
        assert limits.network is False and limits.egress is not None
        assert limits.egress.model_dump() == {
            "allow": ("files.test:443",),
            "publish": {"PG": "files.test:5432"},
        }


async def test_network_must_be_a_flag_or_an_allow_list(tmp_path: Path) -> None:
    async with running_service(make_settings(tmp_path)) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x", "network": ["a"]})
        message = assert_error(response, 422, "invalid_request")
        assert message == 'body.network: Input should be true, false or {"allow": [...]}'


def test_every_egress_connection_is_counted() -> None:
    metrics = ServiceMetrics()
    metrics.egress.observe(
        EgressEvent(
            owner="r", host="files.test", port=443, outcome="allowed", bytes_out=10, bytes_in=30
        )
    )
    metrics.egress.observe(EgressEvent(owner="r", host="evil.test", port=443, outcome="denied"))
    text = metrics.render().decode()
    assert 'ai_data_agent_egress_connections_total{outcome="allowed"} 1.0' in text
    assert 'ai_data_agent_egress_connections_total{outcome="denied"} 1.0' in text
    assert 'ai_data_agent_egress_bytes_total{direction="in"} 30.0' in text
    assert 'ai_data_agent_egress_bytes_total{direction="out"} 10.0' in text


async def test_info_tells_clients_which_hosts_they_may_ask_for(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, egress_allow=["files.test", "*.example.com:443"])
    async with running_service(settings) as svc:
        info = (await svc.client.get("/v1/info")).json()
        assert info["egress_allow"] == ["files.test", "*.example.com:443"]
    async with running_service(make_settings(tmp_path / "off")) as svc:
        assert (await svc.client.get("/v1/info")).json()["egress_allow"] == []
