"""The daemon's own egress proxy: started with it, in its process, every connection counted.

The proxy here resolves with the host's resolver and connects from the host's
network, so only refusals are exercised (the private internet of the other
tests lives in a namespace this subprocess does not enter): a name that does
not resolve, this machine's own name (it resolves to loopback or a private
address: the daemon's own API is not reachable that way), and one off the list,
each answered to the code and counted in /metrics.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

CODE = r"""
import json, os, urllib.error, urllib.request
out = {}
for url in json.loads(os.environ["URLS"]):
    try:
        urllib.request.urlopen(url, timeout=15)
        out[url] = "reached"
    except urllib.error.URLError as exc:
        out[url] = str(exc.reason)
print(json.dumps(out))
"""


def test_the_daemon_runs_the_proxy_and_counts_its_connections(
    start_daemon: Callable[..., Daemon],
) -> None:
    me = socket.gethostname().lower()
    daemon = start_daemon(egress_allow=f"nowhere.invalid,{me}")
    urls = ["https://nowhere.invalid/", f"https://{me}:{daemon.url.rsplit(':', 1)[1]}/"]
    with daemon.client() as client:
        refused = client.post(
            "/v1/runs", json={"code": "print(1)", "network": {"allow": ["evil.test"]}}
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["message"] == (
            "network.allow: evil.test is not on this server's egress allow-list"
        )
        answer = client.post(
            "/v1/runs",
            json={
                "code": CODE,
                "network": {"allow": ["nowhere.invalid", me]},
                "env": {"URLS": json.dumps([*urls, "https://evil.test/"])},
            },
        )
        result = answer.json()
        assert result["status"] == "succeeded", (result["error"], result["stderr"][-2000:])
        seen = json.loads(result["stdout"])
        failed = "Tunnel connection failed: "
        assert seen == {
            urls[0]: failed + "502 egress: cannot resolve nowhere.invalid",
            urls[1]: failed + f"502 egress: cannot resolve {me}",  # not a global address
            "https://evil.test/": failed
            + "403 egress denied: evil.test:443 is not on the allow-list",
        }
        metrics = client.get("/metrics").text

        def egress_entries() -> list[dict[str, Any]]:
            audit = client.get("/v1/audit", params={"limit": 50}).json()["items"]
            found = [e for e in audit if e["action"].startswith("egress.")]
            return found if len(found) >= 3 else []

        # Written by the audit log's own thread, a moment after the run answers.
        egress = poll(egress_entries, timeout_s=10, what="the egress entries")
    for host in ("nowhere.invalid", me, "evil.test"):
        found = [e for e in egress if e["object_id"].startswith(f"{result['id']} {host}:")]
        assert found, (host, egress)  # each connection in the audit log, as the run's tenant's
        assert all(e["tenant"] == "admin" and e["status"] >= 400 for e in found), found
    assert 'ai_data_agent_egress_connections_total{outcome="denied"} 3.0' in metrics
    assert f"egress denied {me}:" in daemon.log(None)
