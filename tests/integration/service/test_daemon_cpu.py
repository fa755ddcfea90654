"""CPU time through the real daemon and engine: a run's and a cell's CPU seconds are read
from their container's cgroup (CPU, not wall time), charged to the tenant as they end, and a
tenant at its ``cpu_seconds_per_hour`` is refused with 429 ``quota_exceeded``."""

from __future__ import annotations

import pytest

from ai_data_agent.client import Client, QuotaExceeded
from tests.integration.service.test_daemon_quotas import add_tenant
from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration

# CPU time of the code's own process, so it burns 1.5 s of CPU however loaded the host is.
BURN = "import time\nwhile time.process_time() < {:g}:\n    pass"


def test_a_run_over_the_tenants_cpu_hour_refuses_the_next_and_sleeping_costs_no_cpu(
    shared_daemon: Daemon,
) -> None:
    sleeper = Client(shared_daemon.url, add_tenant(shared_daemon, "sleeper"), timeout=60)
    burner_token = add_tenant(shared_daemon, "burner", cpu_seconds_per_hour=1)
    burner = Client(shared_daemon.url, burner_token, timeout=60)
    try:
        slept = sleeper.run("import time; time.sleep(2)")
        assert slept.status == "succeeded" and slept.timings.execute_s >= 2
        assert slept.cpu_seconds is not None and slept.cpu_seconds < 0.5, slept.cpu_seconds
        burnt = burner.run(BURN.format(1.5))
        assert burnt.status == "succeeded", burnt
        assert burnt.cpu_seconds is not None and 1.5 <= burnt.cpu_seconds < 3, burnt.cpu_seconds
        print(f"CPU seconds: a 2 s sleep {slept.cpu_seconds}, a 1.5 s burn {burnt.cpu_seconds}")
        with pytest.raises(QuotaExceeded) as caught:
            burner.run("print(1)")
        error = caught.value
        assert (error.status_code, error.quota, error.limit) == (429, "cpu_seconds_per_hour", 1)
        assert error.used is not None and error.used >= 1.5
        assert error.retry_after is not None and 3500 < error.retry_after <= 3600
        with shared_daemon.client(burner_token) as raw:
            refused = raw.post("/v1/sessions", json={})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 3500
        body = refused.json()["error"]
        assert (body["code"], body["quota"], body["limit"]) == (
            "quota_exceeded",
            "cpu_seconds_per_hour",
            1,
        )
        assert body["used"] == error.used
        with shared_daemon.client() as admin:
            metrics = admin.get("/metrics").text
        charged = next(
            line
            for line in metrics.splitlines()
            if line.startswith('ai_data_agent_tenant_cpu_seconds_total{tenant="burner"}')
        )
        assert float(charged.split()[-1]) == pytest.approx(burnt.cpu_seconds, abs=1e-3)
    finally:
        sleeper.close()
        burner.close()


def test_a_cells_cpu_seconds_are_what_the_session_used_since_the_cell_before(
    shared_daemon: Daemon,
) -> None:
    with Client(shared_daemon.url, add_tenant(shared_daemon, "celler"), timeout=60) as client:
        session = client.session()
        try:
            burnt = session.run(BURN.format(0.6))
            assert burnt.status == "succeeded" and burnt.cpu_seconds is not None
            assert 0.6 <= burnt.cpu_seconds < 1.5, burnt.cpu_seconds
            quiet = session.run("import time; time.sleep(1)")
            assert quiet.cpu_seconds is not None and quiet.cpu_seconds < 0.3, quiet.cpu_seconds
        finally:
            session.close()
