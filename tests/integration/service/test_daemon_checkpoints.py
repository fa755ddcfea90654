"""Sessions that outlive their container, through the real daemon and the client: a round trip
of pandas, numpy, cells' functions and classes; pause and the next cell; fork; a daemon stopped
(SIGTERM) or killed (-9, with a checkpoint after each cell) and restarted."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import docker
import pytest

from ai_data_agent.session_models import CellStatus, SessionStatus
from tests.integration.service.test_daemon_sessions import client_of, containers_of
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

CACHE = {"install_mode": "cache", "installer": "uv"}
RAW = bytes(range(256)) * 1000 + b"\x00tail"

SETUP = """
import io, socket, threading
import numpy as np
import pandas as pd
df = pd.DataFrame({"region": ["north", "south"] * 50, "units": range(100)})
arr = np.arange(12, dtype="float32").reshape(3, 4)
nested = {"a": [1, (2, 3), {"b": {4, 5}}], "when": None}
same = nested
class Scaler:
    def __init__(self, k): self.k = k
    def __call__(self, x): return x * self.k * BONUS
BONUS = 2
scale = Scaler(3)
def total(): return int(df.units.sum()) + BONUS
square = lambda v: v * v
fh = open("outputs/log.txt", "w"); fh.write("kept"); fh.flush()
sock = socket.socket()
gen = (i for i in range(3))
lock = threading.Lock()
"""
CHECK = (
    "assert df.shape == (100, 2) and df.units.sum() == 4950\n"
    "assert arr.dtype == np.float32 and arr[2, 3] == 11\n"
    "assert nested['a'][2]['b'] == {4, 5} and same is nested\n"
    "assert isinstance(scale, Scaler) and scale(1) == 6 and square(7) == 49\n"
    "BONUS = 10\n"
    "assert total() == 4960 and scale(1) == 30\n"
    "print('all back')"
)


def test_pause_resume_and_fork_bring_back_the_namespace_and_the_files(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient
) -> None:
    daemon = start_daemon(**CACHE)
    with client_of(daemon) as client:
        s = client.session(requirements=["pandas"])
        s.upload("data/raw.bin", RAW)
        assert s.run(SETUP).status is CellStatus.SUCCEEDED
        info = s.checkpoint()
        assert {"df", "arr", "nested", "same", "Scaler", "scale", "total", "square"} <= set(
            info.kept
        )
        lost = {v.name: v.type for v in info.lost}
        assert lost == {
            "fh": "TextIOWrapper",
            "sock": "socket",
            "gen": "generator",
            "lock": "lock",
        }
        assert info.files == 2 and info.bytes > len(RAW)

        paused = s.pause()
        assert paused.status is SessionStatus.PAUSED
        poll(lambda: not containers_of(docker_client, s.id), timeout_s=30, what="no container")
        assert s.refresh().status is SessionStatus.PAUSED

        cell = s.run(CHECK)  # resumes first
        assert cell.status is CellStatus.SUCCEEDED, cell.error
        assert cell.stdout == "all back\n" and cell.state == "restored"
        assert cell.restore is not None and cell.restore.execution_count == 1
        assert {v.name for v in cell.restore.lost} == set(lost)
        assert hashlib.sha256(s.download("data/raw.bin")).digest() == hashlib.sha256(RAW).digest()
        assert s.download("outputs/log.txt") == b"kept"
        assert s.run("1 + 1").state == "preserved"

        fork = s.fork()
        assert fork.id != s.id and fork.info.restore is not None
        fork.run("BONUS = 100")
        assert fork.run("total()").result.data["text/plain"] == "5050"
        assert s.run("total()").result.data["text/plain"] == "4960"
        assert s.resume().state == "preserved"  # live: nothing to do
        fork.close()
        s.close()
    poll(lambda: not containers_of(docker_client, s.id), timeout_s=30, what="no container")


def test_an_idle_session_is_paused_and_its_next_cell_resumes_it(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient
) -> None:
    daemon = start_daemon(session_idle_timeout_s=1.5)  # session_idle_action: pause
    with client_of(daemon) as client:
        s = client.session()
        s.run("word = 'kept'")
        poll(lambda: s.refresh().status is SessionStatus.PAUSED, timeout_s=20, what="the pause")
        assert s.info.checkpoint == 1
        poll(lambda: not containers_of(docker_client, s.id), timeout_s=30, what="no container")
        cell = s.run("word")
        assert cell.state == "restored" and cell.result.data["text/plain"] == "'kept'"
        s.close()


def test_a_daemon_stopped_and_started_again_resumes_its_sessions(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon()
    with client_of(daemon) as client:
        s = client.session()
        s.run("kept = [1, 2, 3]\ndef f(): return sum(kept)")
        session_id = s.id
    daemon.stop()  # SIGTERM: live sessions are checkpointed and paused
    again = daemon.restart()
    try:
        with client_of(again) as client:
            s = client.session_of(session_id)
            assert s.info.status is SessionStatus.PAUSED
            cell = s.run("f()")
            assert cell.state == "restored" and cell.result.data["text/plain"] == "6"
            s.close()
    finally:
        again.stop()


def test_a_daemon_killed_resumes_at_the_last_cell_with_a_checkpoint_after_each(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(checkpoint_after_each_cell=True)
    with client_of(daemon) as client:
        s = client.session()
        s.run("n = 1")
        s.run("n += 1")
        session_id = s.id
        poll(
            lambda: len(s.checkpoints()) >= 1 and s.checkpoints()[0].execution_count == 2,
            timeout_s=30,
            what="the checkpoint of cell 2",
        )
    daemon.kill()
    again = daemon.restart()
    try:
        with client_of(again) as client:
            s = client.session_of(session_id)
            cell = s.run("n")
            assert cell.state == "restored" and cell.result.data["text/plain"] == "2"
            assert cell.restore is not None and cell.restore.execution_count == 2
            assert cell.execution_count == 3
            s.close()
    finally:
        again.stop()


def test_a_checkpoint_past_the_tenants_storage_quota_is_refused_and_the_session_goes_on(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon()
    limit = 1_000_000
    with daemon.client() as admin:
        made = admin.post("/v1/tenants", json={"name": "lean", "quotas": {"storage_bytes": limit}})
        assert made.status_code == 201, made.text
        token = admin.post("/v1/tokens", json={"tenant": "lean", "name": "lean-1"}).json()
    http = daemon.client(token["secret"])
    sid = http.post("/v1/sessions", json={}).json()["id"]

    def cell(code: str) -> dict[str, object]:
        answer = http.post(f"/v1/sessions/{sid}/cells", json={"code": code})
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        assert body["status"] == "succeeded", body
        return body

    cell("small = list(range(10))")
    first = http.post(f"/v1/sessions/{sid}/checkpoint")
    assert first.status_code == 201, first.text
    held = first.json()["bytes"]
    cell("big = bytes(2 * 1024 * 1024)")
    for action in ("checkpoint", "pause"):
        refused = http.post(f"/v1/sessions/{sid}/{action}")
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert (error["code"], error["quota"], error["limit"]) == (
            "quota_exceeded",
            "storage_bytes",
            limit,
        )
        assert error["used"] == held, error
    assert http.get(f"/v1/sessions/{sid}").json()["status"] == "idle"
    assert [c["seq"] for c in http.get(f"/v1/sessions/{sid}/checkpoints").json()["items"]] == [1]
    after = cell("del big\nlen(small)")
    assert after["state"] == "preserved" and after["result"]["data"]["text/plain"] == "10"
    again = http.post(f"/v1/sessions/{sid}/checkpoint")
    assert again.status_code == 201, again.text
    http.delete(f"/v1/sessions/{sid}")
