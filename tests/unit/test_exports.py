"""The package's curated public surface (``ai_data_agent.__all__``), pinned like httpx's."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import ai_data_agent
import ai_data_agent.errors

EXPORTED = [
    "AiDataAgentError",
    "CheckpointFailed",
    "ConfigurationError",
    "DatasetInUse",
    "DockerUnavailable",
    "EgressRefused",
    "Executor",
    "ExecutorError",
    "FileNotFound",
    "Forbidden",
    "InputFile",
    "InstallFailed",
    "NoWorker",
    "NotFound",
    "NotReady",
    "QueueFull",
    "QuotaExceeded",
    "RequestRejected",
    "RequestTooLarge",
    "RunEvent",
    "RunIncomplete",
    "RunRequest",
    "RunResult",
    "RunStatus",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionError",
    "SessionGone",
    "SessionLimit",
    "Settings",
    "Unauthorized",
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
        for name in dir(ai_data_agent)
        if not name.startswith("_")
        and not isinstance(getattr(ai_data_agent, name), type(ai_data_agent))
    }
    assert public == set(ai_data_agent.__all__)


def test_exceptions_form_one_tree() -> None:
    base = ai_data_agent.AiDataAgentError
    exported = {getattr(ai_data_agent, name) for name in ai_data_agent.__all__}
    errors = {cls for cls in exported if isinstance(cls, type) and issubclass(cls, Exception)}
    assert all(issubclass(cls, base) for cls in errors)
    # Every class of the tree in errors.py is exported, and each is drawn in its docstring.
    tree = {
        value
        for value in vars(ai_data_agent.errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert errors == tree
    assert all(f" {cls.__name__} " in ai_data_agent.errors.__doc__ for cls in tree)
    assert issubclass(ai_data_agent.DockerUnavailable, ai_data_agent.ExecutorError)
    assert issubclass(ai_data_agent.RequestTooLarge, ai_data_agent.RequestRejected)


def test_no_module_but_errors_defines_an_exception() -> None:
    """One tree: no module keeps exceptions of its own (no second ``QueueFull``)."""
    package = Path(ai_data_agent.__file__).parent
    tree = {
        name
        for name, value in vars(ai_data_agent.errors).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "errors.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}
                if any(b.endswith(("Error", "Exception")) or b in tree for b in bases):
                    found.append(f"{path.relative_to(package)}: {node.name}")
    assert found == []


def test_version_matches_the_distribution() -> None:
    assert ai_data_agent.__version__ == importlib.metadata.version("ai-data-agent")


CLIENT_EXPORTED = [
    "Client",
    "FileNotFound",
    "Forbidden",
    "InstallFailed",
    "NoWorker",
    "NotFound",
    "NotReady",
    "QueueFull",
    "QuotaExceeded",
    "RemoteSession",
    "RequestRejected",
    "RequestTooLarge",
    "RunIncomplete",
    "ServerError",
    "ServerUnreachable",
    "SessionBusy",
    "SessionGone",
    "SessionLimit",
    "Unauthorized",
    "error_from_response",
]


def test_the_client_and_the_cli_export_their_names() -> None:
    """`from ai_data_agent.client import Client, RemoteSession, ...` and the console script's
    `ai_data_agent.cli:main` are the packages' surfaces."""
    import ai_data_agent.cli
    import ai_data_agent.client

    assert ai_data_agent.client.__all__ == CLIENT_EXPORTED
    assert all(hasattr(ai_data_agent.client, name) for name in CLIENT_EXPORTED)
    assert ai_data_agent.cli.__all__ == ["app", "main"]
    script = importlib.metadata.distribution("ai-data-agent").entry_points["ai-data-agent"]
    assert script.value == "ai_data_agent.cli:main" and script.load() is ai_data_agent.cli.main
