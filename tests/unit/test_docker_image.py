"""`DockerBackend` image resolution with a tiny fake client (no Docker engine).

Only what the backend calls exists on the fake: ``api.inspect_image`` and
``api.pull``, raising docker-py's own exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable

import docker.errors
import pytest
import requests.exceptions

from ai_data_agent.errors import ConfigurationError, ExecutorError
from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.settings import DEFAULT_FALLBACK_IMAGE, DEFAULT_SANDBOX_IMAGE, Settings
from tests.support.logs import LogLine


class FakeImageAPI:
    def __init__(self, present: Iterable[str], pullable: Iterable[str] = ()) -> None:
        self.present = set(present)
        self.pullable = set(pullable)
        self.inspected: list[str] = []
        self.pulled: list[str] = []
        self.inspect_error: Exception | None = None

    def inspect_image(self, image: str) -> dict[str, str]:
        self.inspected.append(image)
        if self.inspect_error is not None:
            raise self.inspect_error
        if image not in self.present:
            raise docker.errors.ImageNotFound(f"No such image: {image}")
        return {"Id": "sha256:" + "0" * 64}

    def pull(self, image: str) -> str:
        self.pulled.append(image)
        if image not in self.pullable:
            raise docker.errors.APIError(f"pull access denied for {image}: registry unreachable")
        self.present.add(image)
        return ""


class FakeClient:
    def __init__(self, api: FakeImageAPI) -> None:
        self.api = api


def backend(settings: Settings, api: FakeImageAPI) -> DockerBackend:
    return DockerBackend(settings, client=FakeClient(api))  # type: ignore[arg-type]


def test_present_image_is_used_without_pulling() -> None:
    api = FakeImageAPI(present=[DEFAULT_SANDBOX_IMAGE])
    assert backend(Settings(), api).resolve_image() == DEFAULT_SANDBOX_IMAGE
    assert api.pulled == []


def test_missing_image_is_pulled() -> None:
    api = FakeImageAPI(present=[], pullable=[DEFAULT_SANDBOX_IMAGE])
    assert backend(Settings(), api).resolve_image() == DEFAULT_SANDBOX_IMAGE
    assert api.pulled == [DEFAULT_SANDBOX_IMAGE]


def test_resolved_once_per_backend() -> None:
    api = FakeImageAPI(present=[DEFAULT_SANDBOX_IMAGE])
    b = backend(Settings(), api)
    assert b.resolve_image() == b.resolve_image() == DEFAULT_SANDBOX_IMAGE
    assert api.inspected == [DEFAULT_SANDBOX_IMAGE]


def test_explicit_image_missing_is_a_configuration_error() -> None:
    api = FakeImageAPI(present=[DEFAULT_FALLBACK_IMAGE])
    settings = Settings(sandbox_image="registry.local/py:3.12")
    with pytest.raises(ConfigurationError) as info:
        backend(settings, api).resolve_image()
    message = str(info.value)
    assert "registry.local/py:3.12" in message
    assert "make images" in message
    assert "pull failed" in message
    # No silent fallback for an image the operator chose.
    assert DEFAULT_FALLBACK_IMAGE not in api.inspected


def test_explicit_image_with_pulling_disabled() -> None:
    api = FakeImageAPI(present=[])
    settings = Settings(sandbox_image="mine:1", pull_missing_image=False)
    with pytest.raises(ConfigurationError, match="pulling is disabled"):
        backend(settings, api).resolve_image()
    assert api.pulled == []


def test_default_image_missing_falls_back_with_a_warning(log_lines: list[LogLine]) -> None:
    api = FakeImageAPI(present=[DEFAULT_FALLBACK_IMAGE])
    assert backend(Settings(), api).resolve_image() == DEFAULT_FALLBACK_IMAGE
    assert api.pulled == [DEFAULT_SANDBOX_IMAGE]
    warnings = [line.message for line in log_lines if line.level == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith("fallback_triggered:")
    assert DEFAULT_SANDBOX_IMAGE in warnings[0] and DEFAULT_FALLBACK_IMAGE in warnings[0]


def test_default_and_fallback_missing_is_a_configuration_error() -> None:
    api = FakeImageAPI(present=[])
    with pytest.raises(ConfigurationError) as info:
        backend(Settings(), api).resolve_image()
    message = str(info.value)
    assert DEFAULT_SANDBOX_IMAGE in message and DEFAULT_FALLBACK_IMAGE in message
    assert "make images" in message


@pytest.mark.parametrize(
    "error",
    [
        docker.errors.APIError("500 Server Error: daemon broke"),
        requests.exceptions.ConnectionError("connection refused"),
    ],
)
def test_inspect_failure_is_an_executor_error(error: Exception) -> None:
    api = FakeImageAPI(present=[DEFAULT_SANDBOX_IMAGE])
    api.inspect_error = error
    with pytest.raises(ExecutorError) as info:
        backend(Settings(), api).resolve_image()
    assert info.value.step == "image"
    assert info.value.__cause__ is error
