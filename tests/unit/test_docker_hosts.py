"""Sandboxes without a network skip the engine's network setup and get their /etc/hosts."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.executor.docker.hosts import HOSTS, HOSTS_PATH, HostsFile
from ai_data_agent.executor.spec import ContainerSpec, build_spec
from ai_data_agent.models import Limits
from ai_data_agent.settings import Settings


def spec_for(*, needs_install: bool = False) -> ContainerSpec:
    limits = Limits(timeout_s=60.0, memory_mb=1024, cpus=1.0, network=False)
    return build_spec(
        Settings(),
        limits,
        image="python:3.12-slim",
        run_id="run-1",
        controller_id="ctl-1",
        needs_install=needs_install,
    )


def test_the_file_is_written_once_readable_by_all_and_bound_read_only(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "sandbox-hosts"
    mount = HostsFile(path).mount()
    assert mount is not None
    assert (mount["Type"], mount["Source"], mount["Target"]) == ("bind", str(path), HOSTS_PATH)
    assert mount["ReadOnly"] is True
    assert path.read_text("utf-8") == HOSTS
    assert "127.0.0.1\tlocalhost\n" in HOSTS
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["sandbox-hosts"]  # no staging left

    os.utime(path, (1, 1))
    assert HostsFile(path).mount() is not None
    assert path.stat().st_mtime == 1  # the same content is left as it is


def test_other_content_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-hosts"
    path.write_text("10.0.0.1 localhost\n")
    assert HostsFile(path).mount() is not None
    assert path.read_text("utf-8") == HOSTS


def test_a_file_that_cannot_be_written_keeps_the_engines_network_setup(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    assert HostsFile(tmp_path / "a-file" / "sandbox-hosts").mount() is None


def test_only_an_error_that_names_the_file_turns_it_off(tmp_path: Path) -> None:
    hosts = HostsFile(tmp_path / "sandbox-hosts")
    assert hosts.mount() is not None
    assert hosts.refused(RuntimeError("invalid memory limit")) is False
    assert hosts.mount() is not None
    assert hosts.refused(RuntimeError(f"bind source path does not exist: {hosts.path}")) is True
    assert hosts.mount() is None


class CreatingAPI:
    """docker-py's create calls, recorded; ``refuse`` answers the first lean create 400."""

    def __init__(self, refuse: str | None = None) -> None:
        self.created: list[dict[str, Any]] = []
        self.refuse = refuse

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        self.created.append(kwargs)
        if self.refuse is not None and kwargs["network_disabled"]:
            message, self.refuse = self.refuse, None
            raise docker.errors.APIError("400 Client Error: Bad Request", explanation=message)
        return {"Id": f"c{len(self.created)}"}


class Client:
    def __init__(self, api: CreatingAPI) -> None:
        self.api = api


def backend_on(api: CreatingAPI, cache: Path, monkeypatch: pytest.MonkeyPatch) -> DockerBackend:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return DockerBackend(Settings(), client=Client(api))  # type: ignore[arg-type]


def hosts_mounts(created: dict[str, Any]) -> list[Any]:
    return [m for m in created["host_config"]["mounts"] or () if m["Target"] == HOSTS_PATH]


def test_a_sandbox_without_a_network_is_created_with_it_disabled_and_its_hosts_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = CreatingAPI()
    backend = backend_on(api, tmp_path, monkeypatch)
    install: ContainerSpec = spec_for(needs_install=True)
    assert backend._create(spec_for()) == "c1"
    assert backend._create(install) == "c2"
    egress = dataclasses.replace(spec_for(), egress_dir=tmp_path)
    backend._create(egress)
    lean, networked, proxied = api.created
    assert lean["network_disabled"] is True
    [mount] = hosts_mounts(lean)
    assert mount["Source"] == str(tmp_path / "ai-data-agent" / "sandbox-hosts")
    assert networked["network_disabled"] is False and not hosts_mounts(networked)
    assert networked["host_config"]["network_mode"] == "bridge"
    assert proxied["network_disabled"] is True and hosts_mounts(proxied)


def test_an_engine_that_cannot_mount_the_file_gets_the_network_setup_from_then_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "ai-data-agent" / "sandbox-hosts"
    api = CreatingAPI(refuse=f"invalid mount config: bind source path does not exist: {missing}")
    backend = backend_on(api, tmp_path, monkeypatch)
    assert backend._create(spec_for()) == "c2"  # refused, then made as before
    assert backend._create(spec_for()) == "c3"
    refused, *after = api.created
    assert refused["network_disabled"] is True
    assert all(c["network_disabled"] is False and not hosts_mounts(c) for c in after)


def test_another_refusal_is_raised_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = CreatingAPI(refuse="unknown runtime specified")
    backend = backend_on(api, tmp_path, monkeypatch)
    with pytest.raises(docker.errors.APIError, match="unknown runtime"):
        backend._create(spec_for())
    backend._create(spec_for())
    assert [c["network_disabled"] for c in api.created] == [True, True]
