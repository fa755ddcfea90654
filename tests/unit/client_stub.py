"""A stub daemon for the client's unit tests: scripted answers over httpx.MockTransport.

recorder = Recorder(httpx.Response(200, json=session_json()))   # then the next answers
client = Client(BASE, transport=httpx.MockTransport(recorder))  # or the client_for fixture
client.session()
recorder.last.method == "POST"
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ai_data_agent.api_models import LimitRange, RunLimitsInfo, ServerInfo
from ai_data_agent.session_models import SessionInfo, SessionStatus

BASE = "http://daemon.test"
Handler = Callable[[httpx.Request], httpx.Response]


def error_response(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


INFO = ServerInfo(
    version="9.9.9",
    features=["runs", "files", "artifacts", "events"],
    limits=RunLimitsInfo(
        timeout_s=LimitRange(default=40, max=300),
        memory_mb=LimitRange(default=512, max=1024),
        cpus=LimitRange(default=1, max=2),
    ),
    install_timeout_s=111,
    allow_network=False,
    cancel_wait_s=45,
    max_body_bytes=1 << 20,
    max_code_bytes=1 << 16,
    max_requirements=10,
    max_env_vars=8,
    max_env_value_bytes=256,
    max_input_files=3,
    max_input_file_bytes=1 << 10,
    max_input_total_bytes=1 << 11,
    max_artifacts=5,
    max_artifact_total_bytes=1 << 12,
    stdout_limit_bytes=1 << 10,
    stderr_limit_bytes=1 << 10,
    output_policy="truncate",
)


class Recorder:
    """A MockTransport handler: ``GET /v1/info`` answers ``info`` (counted apart), every
    other request an answer from the script; the requests are kept."""

    def __init__(
        self, *answers: httpx.Response | Handler, info: httpx.Response | None = None
    ) -> None:
        self.answers = list(answers)
        self.info = info or httpx.Response(200, json=INFO.model_dump(mode="json"))
        self.requests: list[httpx.Request] = []
        self.info_requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            self.info_requests += 1
            return self.info
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


def session_json(session_id: str = "s1") -> dict[str, Any]:
    return SessionInfo(
        id=session_id,
        status=SessionStatus.IDLE,
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        last_activity_at=datetime(2025, 1, 1, tzinfo=UTC),
    ).model_dump(mode="json")
