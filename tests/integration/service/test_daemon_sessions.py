"""Sessions through the real daemon and the package's client: tables, figures, files, expiry,
and a daemon killed with -9 that leaves no sandbox behind."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable

import docker
import pytest

from ai_data_agent.client import Client
from ai_data_agent.errors import RequestRejected, SessionBusy, SessionGone
from ai_data_agent.executor.spec import LABEL_MANAGED, LABEL_RUN_ID
from ai_data_agent.session_models import CellStatus, SessionStatus
from tests.support.daemon import Daemon
from tests.support.wait import poll

pytestmark = pytest.mark.integration

SALES = b"region,units\nnorth,3\nsouth,5\nnorth,4\n"
CACHE = {"install_mode": "cache", "installer": "uv"}


def client_of(daemon: Daemon) -> Client:
    return Client(daemon.url, daemon.token, timeout=30)


def containers_of(docker_client: docker.DockerClient, session_id: str) -> list[str]:
    found = docker_client.containers.list(
        all=True, filters={"label": [LABEL_MANAGED, f"{LABEL_RUN_ID}={session_id}"]}, sparse=True
    )
    return [c.id for c in found]


def test_a_table_a_figure_and_files_through_the_daemon(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(**CACHE)
    with client_of(daemon) as client, client.session(requirements=["pandas", "matplotlib"]) as s:
        s.upload("data/sales.csv", SALES)
        s.run("import pandas as pd\ndf = pd.read_csv('data/sales.csv')")
        table = s.run("df.describe()")
        assert table.result is not None and "<table" in table.result.data["text/html"]
        shown: list[str] = []
        plot = s.run(
            "import matplotlib.pyplot as plt\n"
            "df.groupby('region').units.sum().plot.bar()\n"
            "plt.savefig('outputs/chart.png')\n"
            "print('saved')",
            on_output=lambda kind, data: shown.append(kind),
        )
        assert plot.status is CellStatus.SUCCEEDED, plot.error
        assert "stdout" in shown and "display" in shown  # live, before the result
        (figure,) = [o for o in plot.outputs if "image/png" in o.data]
        assert base64.b64decode(figure.data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert [a.path for a in plot.artifacts] == ["chart.png"]
        assert s.download("outputs/chart.png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert {f.path for f in s.files()} >= {"data/sales.csv", "outputs/chart.png"}
        with pytest.raises(RequestRejected) as refused:  # the user's path and why, nothing else
            s.upload("outputs", b"x")
        assert str(refused.value).endswith("cannot write outputs: outputs is a directory")


def test_a_session_file_past_the_json_body_cap_reaches_the_kernel(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon()
    data = bytes(range(256)) * (17 * 4096)  # 17 MiB: past the 16 MiB body cap, under 32 MiB
    with client_of(daemon) as client, client.session() as s:
        assert s.upload("big.bin", data).size == len(data)
        check = s.run(
            "import hashlib\nprint(hashlib.sha256(open('big.bin','rb').read()).hexdigest())"
        )
        assert check.stdout.strip() == hashlib.sha256(data).hexdigest()


def test_busy_is_refused_and_a_second_client_sees_the_same_session(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(**CACHE)
    with client_of(daemon) as first, client_of(daemon) as second:
        session = first.session()
        other = second.session_of(session.id)
        worker_result: list[object] = []
        worker = threading.Thread(
            target=lambda: worker_result.append(session.run("import time; time.sleep(2); 'slow'"))
        )
        worker.start()
        poll(lambda: other.refresh().status == SessionStatus.BUSY, timeout_s=10, what="busy")
        with pytest.raises(SessionBusy):
            other.run("1")
        assert other.interrupt() is True
        worker.join(15)
        assert worker_result and worker_result[0].status is CellStatus.INTERRUPTED  # type: ignore[attr-defined]
        assert other.run("40 + 2").result.data == {"text/plain": "42"}  # type: ignore[union-attr]
        session.close()
        with pytest.raises(SessionGone):
            other.run("1")


def test_an_idle_session_expires_and_leaves_no_container(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient
) -> None:
    daemon = start_daemon(**CACHE, session_idle_timeout_s=1.5, session_idle_action="expire")
    with client_of(daemon) as client:
        session = client.session()
        assert containers_of(docker_client, session.id)
        poll(lambda: session.refresh().status == SessionStatus.EXPIRED, timeout_s=15, what="expiry")
        assert session.info.error == "idle timeout"
        assert containers_of(docker_client, session.id) == []
        with pytest.raises(SessionGone):
            session.run("1")


def test_kill_9_of_the_daemon_loses_the_session_and_leaves_no_container(
    start_daemon: Callable[..., Daemon], docker_client: docker.DockerClient
) -> None:
    daemon = start_daemon(**CACHE)
    with client_of(daemon) as client:
        session = client.session()
        session.run("x = 1")
    assert containers_of(docker_client, session.id)
    daemon.kill()
    restarted = daemon.restart()  # the startup sweep removes sandboxes of the dead process
    try:
        poll(lambda: containers_of(docker_client, session.id) == [], timeout_s=30, what="sweep")
        with client_of(restarted) as client:
            info = client.session_of(session.id).info
            assert info.status is SessionStatus.LOST
            with pytest.raises(SessionGone):
                client.session_of(session.id).run("x")
    finally:
        restarted.stop()
