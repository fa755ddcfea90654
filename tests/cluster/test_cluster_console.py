"""The operator console on a cluster's API nodes: the same pages over the shared database.

Two API nodes with the same ``console_secret``: a browser signed in on one is
signed in on the other (behind a load balancer either may answer), and both
show a run that a worker executed, with its output and artifact, and a session's
cell with its code (kept in the shared database by the worker).
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.engines import PrivateEngine

from .nodes import TOKEN, Cluster

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.filterwarnings(r"ignore:unclosed <socket\.socket:ResourceWarning"),
]

CELL = "answer_from_a_worker = 6 * 7\nanswer_from_a_worker"
CODE = "open('outputs/table.csv', 'w').write('a,b\\n1,2\\n'); print('made by a worker')"


def test_the_console_answers_on_every_api_node(
    cluster: Cluster, engines: list[PrivateEngine]
) -> None:
    settings = {"console_secret": "one-secret-for-the-cluster"}
    one, two = cluster.api(**settings), cluster.api(**settings)
    cluster.worker(engines[0])
    run_id = one.submit(CODE)
    one.wait_terminal(run_id)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=one.url, headers=auth, timeout=180) as api:
        created = api.post("/v1/sessions", json={})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        cell = api.post(f"/v1/sessions/{session_id}/cells", json={"code": CELL})
        assert cell.json()["status"] == "succeeded", cell.text
        api.delete(f"/v1/sessions/{session_id}")

    with httpx.Client(base_url=one.url) as browser:
        form = browser.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed_in = browser.post(
            "/console/login",
            data={"csrf": csrf.group(1), "token": TOKEN, "next": "/console/runs"},
            headers={"origin": one.url},
        )
        assert signed_in.status_code == 303, signed_in.text
        cookies = dict(browser.cookies)
    with httpx.Client(base_url=two.url, cookies=cookies) as browser:
        listing = browser.get("/console/runs")
        assert listing.status_code == 200 and run_id[:12] in listing.text
        page = browser.get(f"/console/runs/{run_id}")
        assert page.status_code == 200 and "made by a worker" in page.text
        download = browser.get(f"/console/runs/{run_id}/artifacts/table.csv")
        assert download.status_code == 200 and download.content == b"a,b\n1,2\n"
        session = browser.get(f"/console/sessions/{session_id}")
        assert session.status_code == 200 and '<pre class="code cell-code">' in session.text
        assert "answer_from_a_worker" in session.text and "42" in session.text  # code, result
        health = browser.get("/console/health")
        assert health.status_code == 200 and "cluster API node" in health.text
        assert "database" in health.text
        assert re.search(r"worker \S+</td>.*?live, 0 of \d+ slot", health.text, re.S), health.text
