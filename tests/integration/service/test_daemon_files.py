"""Files and live output through the real daemon: uploads, artifact downloads, SSE."""

from __future__ import annotations

import json
import threading
import time

import docker
import pytest

from ai_data_agent.client import Client
from tests.integration.engine import controller_containers
from tests.support.daemon import Daemon

pytestmark = pytest.mark.integration


def test_multipart_upload_and_artifact_download(shared_daemon: Daemon) -> None:
    code = (
        "rows = open('data/in.csv').read().splitlines()\n"
        "open('outputs/count.txt', 'w').write(str(len(rows)))\n"
    )
    http = shared_daemon.client()
    response = http.post(
        "/v1/runs",
        data={"request": json.dumps({"code": code})},
        files=[("files", ("data/in.csv", b"a\nb\nc\n", "text/csv"))],
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded", result
    [artifact] = result["artifacts"]

    listed = http.get(f"/v1/runs/{result['id']}/artifacts").json()
    body = http.get(f"/v1/runs/{result['id']}/artifacts/count.txt")

    assert listed == [artifact]
    assert body.status_code == 200 and body.content == b"3"
    assert body.headers["content-type"].startswith("text/plain")
    assert body.headers["content-length"] == "1"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", "a\x00b"])
def test_path_traversal_in_inputs_is_rejected_before_any_container(
    shared_daemon: Daemon, docker_client: docker.DockerClient, path: str
) -> None:
    controller = shared_daemon.controller_id
    assert controller is not None, shared_daemon.log()
    # This daemon's containers only: other controllers may share the engine.
    before = {c.id for c in controller_containers(docker_client, controller)}
    runs_before = shared_daemon.client().get("/v1/runs").json()["total"]
    body = {"code": "print(1)", "files": [{"path": path, "content_b64": "eA=="}]}

    response = shared_daemon.client().post("/v1/runs", json=body)

    assert response.status_code in (400, 422), response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert shared_daemon.client().get("/v1/runs").json()["total"] == runs_before  # no record
    assert {c.id for c in controller_containers(docker_client, controller)} <= before


def test_sse_client_sees_output_before_the_run_ends(shared_daemon: Daemon) -> None:
    code = "import time\nprint('early line', flush=True)\ntime.sleep(2)\nprint('late line')\n"
    with Client(shared_daemon.url, token=shared_daemon.token) as client:
        run_id = client.submit(code)
        seen: list[tuple[float, str, dict[str, object]]] = []
        for name, data in client.events(run_id):
            seen.append((time.monotonic(), name, data))
        record = client.get(run_id)

    names = [name for _, name, _ in seen]
    assert names[0] == "status" and names[-1] == "result"
    statuses = [d["status"] for _, n, d in seen if n == "status"]
    assert statuses[0] == "queued" and "running" in statuses
    early = next(t for t, n, d in seen if n == "stdout" and "early line" in str(d["data"]))
    ended = seen[-1][0]
    assert ended - early >= 1.5, "the early line must arrive while the code still sleeps"
    assert record.status == "succeeded"
    assert seen[-1][2]["stdout"] == "early line\nlate line\n"


def test_cli_streams_from_the_daemon_and_downloads_outputs(
    shared_daemon: Daemon, tmp_path: object
) -> None:
    import subprocess
    import sys
    from pathlib import Path

    out = Path(str(tmp_path)) / "out"
    script = Path(str(tmp_path)) / "job.py"
    script.write_text("open('outputs/r.txt', 'w').write('ok')\nprint('done')\n")
    env = {
        "AI_DATA_AGENT_SERVER": shared_daemon.url,
        "AI_DATA_AGENT_TOKEN": shared_daemon.token,
        "PATH": "/usr/bin:/bin",
    }
    lines: list[str] = []

    def run() -> None:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "ai-data-agent"),
                "run",
                str(script),
                "--output-dir",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines.extend([str(done.returncode), done.stdout, done.stderr])

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(150)

    code, stdout, stderr = lines
    assert code == "0", stderr
    assert stdout == "done\n"
    assert (out / "r.txt").read_text() == "ok"
    assert "artifact:" in stderr
