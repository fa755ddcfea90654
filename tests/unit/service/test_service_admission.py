"""Admission of a run and what the daemon says about itself.

A submission is validated once (input files decoded once), its limits resolved
once and handed to the executor, a waiting POST answered from the result in
hand; ``GET /v1/info`` tells the limits, caps and features.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from service_fakes import assert_error, make_settings, running_service

import ai_data_agent
from ai_data_agent import api_models, limits, models
from ai_data_agent.api_models import ServerInfo
from ai_data_agent.models import Limits, RunRequest, RunResult, RunStatus
from ai_data_agent.service import runs as runs_module
from ai_data_agent.service.node import CANCEL_WAIT_S
from ai_data_agent.service.records import Outcome
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.anyio


class Counting:
    """A stand-in that counts the calls it passes on."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.function(*args, **kwargs)


class CountingValidator:
    """A model's pydantic validator, counting validations."""

    def __init__(self, validator: Any) -> None:
        self._validator = validator
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._validator, name)
        if name.startswith("validate_"):
            self.calls += 1
        return attribute


@pytest.fixture
def counters(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Count base64 decodes in models, and validations by each model's validator."""
    decode = Counting(base64.b64decode)
    monkeypatch.setattr(
        models, "base64", SimpleNamespace(b64decode=decode, b64encode=base64.b64encode)
    )
    validators = {}
    for model in (models.RunRequest, api_models.RunSubmission, models.InputFile):
        validators[model.__name__] = CountingValidator(model.__pydantic_validator__)
        monkeypatch.setattr(model, "__pydantic_validator__", validators[model.__name__])
    return SimpleNamespace(decode=decode, validators=validators)


BODY = {
    "code": "x",
    "requirements": ["six"],
    "files": [{"path": "data/a.csv", "content_b64": "MSwy"}],
    "timeout_s": 5,
}


async def test_a_json_submission_is_validated_and_decoded_once(
    settings: Settings, counters: SimpleNamespace
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json=BODY)
    assert response.status_code == 200, response.text
    assert "file data/a.csv: b'1,2'" in response.json()["stdout"]
    assert counters.decode.calls == 1
    calls = {name: v.calls for name, v in counters.validators.items()}
    assert calls == {"RunRequest": 0, "RunSubmission": 1, "InputFile": 0}


async def test_a_multipart_submission_is_validated_and_decoded_once(
    settings: Settings, counters: SimpleNamespace
) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x", "requirements": ["six"]})},
            files=[("files", ("data/b.csv", b"3,4", "text/csv"))],
        )
    assert response.status_code == 200, response.text
    assert "file data/b.csv: b'3,4'" in response.json()["stdout"]
    assert counters.decode.calls == 1  # the upload, once encoded for the model, decoded once
    calls = {name: v.calls for name, v in counters.validators.items()}
    assert calls == {"RunRequest": 0, "RunSubmission": 1, "InputFile": 1}


async def test_a_bad_upload_name_is_422_at_its_place(settings: Settings) -> None:
    async with running_service(settings) as svc:
        response = await svc.client.post(
            "/v1/runs",
            data={"request": json.dumps({"code": "x"})},
            files=[("files", ("../escape.csv", b"1", "text/csv"))],
        )
        message = assert_error(response, 422, "invalid_request")
        assert message.startswith("body.files.0.path: path '../escape.csv' is not normalised")
        assert svc.executor.started == []


async def test_limits_are_resolved_once_and_handed_to_the_executor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolved = []
    original = limits.resolve_run

    def resolve(request: RunRequest, settings: Settings) -> Limits:
        resolved.append(request.code)
        return original(request, settings)

    monkeypatch.setattr(runs_module, "resolve_run", resolve)
    settings = make_settings(tmp_path, default_memory_mb=256, max_cpus=2.0)
    async with running_service(settings) as svc:
        response = await svc.client.post("/v1/runs", json={"code": "x", "timeout_s": 7, "cpus": 2})
        assert response.status_code == 200, response.text
        run_id = response.json()["id"]
        assert svc.executor.limits[run_id] == Limits(
            timeout_s=7, memory_mb=256, cpus=2.0, network=False
        )
    assert resolved == ["x"]


async def test_a_waiting_post_is_answered_from_the_result_in_hand(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(settings) as svc:
        get = Counting(svc.daemon.store.get)
        monkeypatch.setattr(svc.daemon.store, "get", get)
        response = await svc.client.post("/v1/runs", json={"code": "x"})
        assert response.status_code == 200, response.text
        assert get.calls == 0
        result = RunResult.model_validate(response.json())
        stored = svc.daemon.store.get(result.id)
    assert result.stdout == "ran: x\n"
    assert stored is not None and stored.result == result


async def test_without_a_result_in_hand_the_record_answers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run its worker never finished (the record was settled elsewhere)."""
    async with running_service(settings) as svc:
        store = svc.daemon.store

        def settled_elsewhere(run_id: str, **kwargs: Any) -> bool:
            store.finish(run_id, Outcome(RunStatus.INTERRUPTED, error="settled elsewhere"))
            return False

        monkeypatch.setattr(store, "mark_running", settled_elsewhere)
        response = await svc.client.post("/v1/runs", json={"code": "x"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "interrupted"
    assert response.json()["error"] == "settled elsewhere"
    assert svc.executor.started == []


# -- GET /v1/info ----------------------------------------------------------------------


async def test_info_tells_the_limits_caps_and_features(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        default_timeout_s=30,
        max_timeout_s=120,
        default_memory_mb=4096,  # above its cap: the cap is what a run gets
        max_memory_mb=1024,
        default_cpus=0.5,
        max_cpus=2,
        install_timeout_s=90,
        allow_network=True,
        max_body_bytes=4096,
        max_input_files=7,
        max_input_file_bytes=1000,
        max_input_total_bytes=2000,
        max_artifacts=3,
        max_artifact_total_bytes=5000,
        stdout_limit_bytes=2048,
        stderr_limit_bytes=1024,
        output_policy="kill",
    )
    async with running_service(settings) as svc:
        response = await svc.client.get("/v1/info")
    assert response.status_code == 200, response.text
    info = ServerInfo.model_validate(response.json())
    assert info.version == ai_data_agent.__version__
    assert info.features == ["runs", "files", "artifacts", "events", "sessions", "mcp"]
    assert response.json()["limits"] == {
        "timeout_s": {"default": 30.0, "max": 120.0},
        "memory_mb": {"default": 1024, "max": 1024},
        "cpus": {"default": 0.5, "max": 2.0},
    }
    assert (info.install_timeout_s, info.allow_network, info.cancel_wait_s) == (
        90,
        True,
        CANCEL_WAIT_S,
    )
    assert (info.max_body_bytes, info.max_input_files) == (4096, 7)
    assert (info.max_input_file_bytes, info.max_input_total_bytes) == (1000, 2000)
    assert (info.max_artifacts, info.max_artifact_total_bytes) == (3, 5000)
    assert (info.stdout_limit_bytes, info.stderr_limit_bytes, info.output_policy) == (
        2048,
        1024,
        "kill",
    )
    assert info.max_code_bytes == settings.max_code_bytes
    assert info.max_requirements == settings.max_requirements


async def test_info_leaves_out_sessions_when_they_are_disabled(tmp_path: Path) -> None:
    async with running_service(make_settings(tmp_path, max_sessions=0)) as svc:
        info = ServerInfo.model_validate((await svc.client.get("/v1/info")).json())
    assert info.features == ["runs", "files", "artifacts", "events", "mcp"]


async def test_info_needs_the_token_and_is_documented(settings: Settings) -> None:
    async with running_service(settings, token=None) as svc:
        assert_error(await svc.client.get("/v1/info"), 401, "unauthorized")
        spec = (await svc.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/info"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ServerInfo"}
    assert "HTTPBearer" in str(operation["security"])
    assert {"ServerInfo", "RunLimitsInfo", "LimitRange"} <= set(spec["components"]["schemas"])
