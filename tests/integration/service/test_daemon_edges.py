"""What a newcomer meets at a real daemon: 503 (not a refused connection) while it drains,
the CLI's ``--server`` stopped by a signal or refused a token, a large file over the
client, and a client generated from ``/openapi.json``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import httpx
import pytest

from ai_data_agent import InputFile
from ai_data_agent.client import Client
from ai_data_agent.executor.spec import LABEL_RUN_ID
from tests.support.daemon import Daemon
from tests.support.settings import child_env
from tests.support.wait import poll

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).with_name("ai-data-agent"))
UV = shutil.which("uv", path=str(Path(sys.executable).parent)) or "uv"
GENERATOR = "openapi-python-client==0.29.1"
MiB = 1024 * 1024


def test_new_requests_get_503_while_the_daemon_drains(
    start_daemon: Callable[..., Daemon],
) -> None:
    daemon = start_daemon(shutdown_grace_s=30, max_concurrent_runs=1)
    http = daemon.client()
    code = "import time\nprint('go', flush=True)\ntime.sleep(4)\nprint('done')"
    run_id = http.post("/v1/runs", json={"code": code, "wait": False}).json()["id"]
    poll(lambda: daemon.record(run_id)["status"] == "running", timeout_s=60, what="the run")
    daemon.process.send_signal(signal.SIGTERM)
    # The drain begins on the server's next tick; from then on the port still answers.
    poll(
        lambda: httpx.get(f"{daemon.url}/readyz", timeout=10).status_code == 503,
        timeout_s=10,
        what="/readyz 503 (shutting down)",
    )
    answers = []
    for _ in range(5):  # the run still has seconds to go
        with httpx.Client(base_url=daemon.url, headers=http.headers, timeout=10) as fresh:
            refused = fresh.post("/v1/runs", json={"code": "print(1)"})
            polled = fresh.get(f"/v1/runs/{run_id}")
        answers.append((refused.status_code, refused.json()["error"]["code"], polled.status_code))
        time.sleep(0.3)
    assert answers == [(503, "not_ready", 200)] * 5
    assert daemon.process.wait(60) == -signal.SIGTERM  # uvicorn re-raises it once drained
    # The run had its grace period: it finished on its own.
    after = daemon.restart()
    record = after.record(run_id)
    assert (record["status"], record["result"]["stdout"]) == ("succeeded", "go\ndone\n")
    after.stop()


def _cli(
    daemon: Daemon, token: str | None, *args: str, command: tuple[str, ...] = ("run",)
) -> subprocess.Popen[bytes]:
    extra = {} if token is None else {"AI_DATA_AGENT_TOKEN": token}
    env = {**child_env({"server": daemon.url}), **extra}
    return subprocess.Popen(
        [CLI, *command, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def test_a_stopped_cli_cancels_its_run_on_the_daemon(
    shared_daemon: Daemon, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    job = tmp_path / "job.py"
    job.write_text("import time\nprint('ready', flush=True)\ntime.sleep(120)\n")
    process = _cli(shared_daemon, shared_daemon.token, str(job))
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 143, stderr.decode()
    (record,) = shared_daemon.client().get("/v1/runs", params={"limit": 1}).json()["items"]
    assert record["status"] == "cancelled" and record["result"]["stdout"] == "ready\n"
    assert f"cancelling run {record['id']} on the daemon" in stderr.decode()
    leftovers = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_RUN_ID}={record['id']}"}
    )
    assert leftovers == []


@pytest.mark.parametrize("command", [("run", "-"), ("session", "ls")], ids=["run", "session"])
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_refused_token_exits_77_with_what_to_set(
    shared_daemon: Daemon, token: str | None, command: tuple[str, ...]
) -> None:
    process = _cli(shared_daemon, token, command=command)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 77, stderr.decode()
    assert "AI_DATA_AGENT_TOKEN" in stderr.decode()


def test_a_file_past_the_json_body_cap_reaches_the_code_over_multipart(
    shared_daemon: Daemon,
) -> None:
    data = os.urandom(13 * MiB)  # base64 in JSON would be 17.3 MiB: over the 16 MiB body cap
    code = "import hashlib\nprint(hashlib.sha256(open('data/big.bin', 'rb').read()).hexdigest())"
    with Client(shared_daemon.url, token=shared_daemon.token) as client:
        assert client.info().max_body_bytes == 16 * MiB
        result = client.run(code, files=[InputFile.from_bytes("data/big.bin", data)])
    assert result.status == "succeeded", (result.error, result.stderr)
    assert result.stdout.strip() == hashlib.sha256(data).hexdigest()


GENERATED_CLIENT_CHECK = """
import sys
import httpx
from ai_data_agent_client import AuthenticatedClient
from ai_data_agent_client.api.runs import get_run, submit_run
from ai_data_agent_client.models import RunResult, RunSubmission

url, token = sys.argv[1:]
with AuthenticatedClient(base_url=url, token=token, timeout=httpx.Timeout(120)) as client:
    result = submit_run.sync(client=client, body=RunSubmission(code="print(6 * 7)"))
    assert isinstance(result, RunResult), result
    record = get_run.sync(client=client, run_id=result.id)
    print(result.status.value, result.stdout.strip(), record.status.value)
"""


def test_a_client_generated_from_the_openapi_document_runs_code(
    shared_daemon: Daemon, tmp_path: Path
) -> None:
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(httpx.get(f"{shared_daemon.url}/openapi.json").json()))
    generate = [
        UV,
        "tool",
        "run",
        "--from",
        GENERATOR,
        "openapi-python-client",
        "generate",
        "--path",
        str(document),
        "--meta",
        "none",
        "--output-path",
        "ai_data_agent_client",
    ]
    made = subprocess.run(generate, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Could not find reference" not in made.stdout + made.stderr
    assert "POST /v1/runs" not in made.stdout + made.stderr  # no operation was skipped
    script = tmp_path / "check.py"
    script.write_text(GENERATED_CLIENT_CHECK)
    check = [
        UV,
        "run",
        "--no-project",
        "--with",
        "attrs",
        "--with",
        "httpx",
        "python",
        str(script),
        shared_daemon.url,
        shared_daemon.token,
    ]
    ran = subprocess.run(check, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.split() == ["succeeded", "42", "succeeded"]
