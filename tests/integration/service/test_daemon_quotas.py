"""Quotas and the fair queue through the real daemon and engine: a tenant that floods the
queue delays another tenant's run by at most one run per worker; a tenant over its quota is
refused with `QuotaExceeded` through the client, and the CLI exits 75."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.client import Client, QuotaExceeded
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

SLEEP = "import time; time.sleep(3)"
FLOOD = 12
WORKERS = 2
CLI = str(Path(sys.executable).with_name("ai-data-agent"))


def add_tenant(daemon: Daemon, name: str, **quotas: Any) -> str:
    """A new agent tenant with ``quotas`` and a token of it; the token's secret."""
    with daemon.client() as admin:
        made = admin.post("/v1/tenants", json={"name": name, "quotas": quotas})
        assert made.status_code == 201, made.text
        token = admin.post("/v1/tokens", json={"tenant": name, "name": f"{name}-1"})
    assert token.status_code == 201, token.text
    secret: str = token.json()["secret"]
    return secret


def test_a_flood_delays_another_tenant_by_at_most_one_run_per_worker_and_quotas_refuse(
    settings_kwargs: dict[str, Any], tmp_path: Path
) -> None:
    values = {**settings_kwargs, "max_concurrent_runs": WORKERS, "max_queued_runs": 40}
    daemon = Daemon.start(tmp_path / "data", values)
    try:
        flood = Client(daemon.url, add_tenant(daemon, "flood"), timeout=60)
        single = Client(daemon.url, add_tenant(daemon, "single"), timeout=60)
        flooded = [flood.submit(SLEEP) for _ in range(FLOOD)]
        poll(
            lambda: sum(flood.get(r).status == "running" for r in flooded[:WORKERS]) == WORKERS,
            timeout_s=120,
            what="the flood's first runs running",
        )
        late = single.submit("print('single')")
        ended = poll(
            lambda: (r := single.get(late)).status not in ("queued", "running") and r,
            timeout_s=120,
            what="the single run's end",
        )
        assert ended.status == "succeeded" and ended.started_at is not None
        records = [flood.get(r) for r in flooded]
        before = [
            r for r in records if r.started_at is not None and r.started_at < ended.started_at
        ]
        # Only the runs that held the workers when it came: the next free slot was its.
        assert len(before) <= WORKERS, [(r.id, r.started_at) for r in before]
        waited = (ended.started_at - ended.created_at).total_seconds()
        print(f"the single run waited {waited:.2f} s behind {FLOOD} queued 3 s runs")

        capped = add_tenant(daemon, "capped", concurrent_runs=1, queued_runs=0)
        held = Client(daemon.url, capped, timeout=60)
        holding = held.submit("import time; time.sleep(120)")
        with pytest.raises(QuotaExceeded) as caught:
            held.submit("print(1)")
        error = caught.value
        assert (error.quota, error.limit, error.used) == ("concurrent_runs", 1, 1)
        assert error.status_code == 429 and error.retry_after
        env = {**os.environ, "AI_DATA_AGENT_TOKEN": capped}
        cli = subprocess.run(
            [CLI, "run", "-", "--server", daemon.url],
            input="print(1)\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert cli.returncode == 75, cli.stderr
        said = " ".join(cli.stderr.split())  # the terminal's width wraps it
        assert "quota_exceeded" in said and "concurrent_runs = 1" in said
        held.cancel(holding)
        for run_id in flooded:
            flood.cancel(run_id)
        for client in (flood, single, held):
            client.close()
    finally:
        daemon.stop()
