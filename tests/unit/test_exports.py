"""The package's curated public surface (``ai_data_agent.__all__``), pinned like httpx's."""

from __future__ import annotations

import importlib.metadata

import ai_data_agent

EXPORTED = [
    "AiDataAgentError",
    "ConfigurationError",
    "DockerUnavailable",
    "Executor",
    "ExecutorError",
    "RequestRejected",
    "RunEvent",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "Settings",
]


def test_all_is_sorted_and_exact() -> None:
    assert ai_data_agent.__all__ == sorted(ai_data_agent.__all__)
    assert ai_data_agent.__all__ == EXPORTED


def test_exported_members_exist_and_are_public() -> None:
    for name in ai_data_agent.__all__:
        member = getattr(ai_data_agent, name)
        assert not name.startswith("_")
        # Re-exported from the package's own modules, not from a dependency.
        assert member.__module__.startswith("ai_data_agent."), name


def test_every_public_name_is_exported() -> None:
    public = {
        name
        for name, value in vars(ai_data_agent).items()
        if not name.startswith("_") and not isinstance(value, type(ai_data_agent))
    }
    assert public == set(ai_data_agent.__all__)


def test_exceptions_form_one_tree() -> None:
    base = ai_data_agent.AiDataAgentError
    for name in ("ConfigurationError", "ExecutorError", "RequestRejected", "DockerUnavailable"):
        assert issubclass(getattr(ai_data_agent, name), base)
    assert issubclass(ai_data_agent.DockerUnavailable, ai_data_agent.ExecutorError)


def test_version_matches_the_distribution() -> None:
    assert ai_data_agent.__version__ == importlib.metadata.version("ai-data-agent")
