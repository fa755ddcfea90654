"""Every hardening choice of a sandbox container (executor/spec.py), and its Docker translation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ai_data_agent.executor.docker.backend import DockerBackend
from ai_data_agent.executor.owner import owner_is_dead, owner_label
from ai_data_agent.executor.spec import (
    CA_BUNDLE_PATH,
    EGRESS_MOUNT,
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_RUN_ID,
    SWEEP_SLACK_S,
    ContainerSpec,
    build_spec,
    sandbox_command,
    seccomp_profile,
)
from ai_data_agent.models import Limits
from ai_data_agent.sandbox.bootstrap import source_of
from ai_data_agent.settings import Settings

MiB = 1024 * 1024
NOW = 1_700_000_000.0


def limits(**overrides: Any) -> Limits:
    values: dict[str, Any] = {"timeout_s": 60.0, "memory_mb": 1024, "cpus": 1.0, "network": False}
    values.update(overrides)
    return Limits(**values)


def spec_for(
    settings: Settings | None = None,
    lim: Limits | None = None,
    *,
    needs_install: bool = False,
) -> ContainerSpec:
    return build_spec(
        settings or Settings(),
        lim or limits(),
        image="python:3.12-slim",
        run_id="run-123",
        controller_id="ctl-9",
        needs_install=needs_install,
        now=NOW,
    )


def test_runs_the_bootstrap_isolated_and_without_site() -> None:
    spec = spec_for()
    assert spec.command == ["python3", "-I", "-S", "-c", source_of("bootstrap")]
    assert tuple(spec.command) == sandbox_command()
    assert spec.image == "python:3.12-slim"


def test_source_of_is_the_file() -> None:
    path = Path(__file__).parents[2] / "src" / "ai_data_agent" / "sandbox" / "bootstrap.py"
    assert source_of("bootstrap") == path.read_text(encoding="utf-8")


def test_unprivileged_read_only_and_no_capabilities() -> None:
    spec = spec_for()
    assert spec.user == "1000:1000"
    assert spec.read_only is True
    assert spec.cap_drop == ("ALL",)
    assert spec.security_opt == ("no-new-privileges:true", f"seccomp={seccomp_profile()}")


def test_tmpfs_is_executable_sized_and_nosuid() -> None:
    spec = spec_for(Settings(tmpfs_mb=256))
    assert list(spec.tmpfs) == ["/tmp"]
    options = spec.tmpfs["/tmp"].split(",")
    assert "exec" in options and "noexec" not in options
    assert "size=256m" in options
    assert {"rw", "nosuid", "nodev"} <= set(options)


def test_memory_cpu_and_pids_limits() -> None:
    spec = spec_for(Settings(pids_limit=128), limits(memory_mb=1536, cpus=1.5))
    assert spec.memory_bytes == 1536 * MiB
    assert spec.nano_cpus == 1_500_000_000
    assert spec.pids_limit == 128


@pytest.mark.parametrize(
    ("reservation_mb", "memory_mb", "expected_mb"),
    [(512, 2048, 512), (512, 256, 256), (0, 256, 0)],
)
def test_memory_reservation_never_exceeds_the_limit(
    reservation_mb: int, memory_mb: int, expected_mb: int
) -> None:
    spec = spec_for(Settings(memory_reservation_mb=reservation_mb), limits(memory_mb=memory_mb))
    assert spec.memory_reservation_bytes == expected_mb * MiB
    assert spec.memory_reservation_bytes <= spec.memory_bytes


def test_labels_name_the_run_controller_and_deadline() -> None:
    settings = Settings(install_timeout_s=100)
    spec = spec_for(settings, limits(timeout_s=30))
    assert spec.labels == {
        LABEL_MANAGED: "true",
        LABEL_RUN_ID: "run-123",
        LABEL_CONTROLLER: "ctl-9",
        LABEL_OWNER: owner_label(),
        LABEL_DEADLINE: str(int(NOW + 100 + 30 + SWEEP_SLACK_S)),
    }
    assert all(key.startswith("ai-data-agent.") for key in spec.labels)


def test_runtime_comes_from_settings() -> None:
    assert spec_for().runtime == "runc"
    assert spec_for(Settings(runtime="runsc")).runtime == "runsc"


def test_no_requirements_and_no_network_means_no_network() -> None:
    spec = spec_for(needs_install=False)
    assert spec.network is None
    assert spec.detach_network_before_code is False


def test_requirements_attach_the_install_network_then_detach_it() -> None:
    spec = spec_for(Settings(install_network="pip-only"), needs_install=True)
    assert spec.network == "pip-only"
    assert spec.detach_network_before_code is True


@pytest.mark.parametrize("needs_install", [True, False])
def test_network_requests_keep_the_network(needs_install: bool) -> None:
    spec = spec_for(Settings(allow_network=True), limits(network=True), needs_install=needs_install)
    assert spec.network == "bridge"
    assert spec.detach_network_before_code is False


def test_documented_environment_only() -> None:
    assert spec_for().environment == {
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_NO_INPUT": "1",
        "MPLBACKEND": "Agg",
    }
    assert spec_for().ca_bundle is None


def test_ca_bundle_sets_the_trust_variables(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    spec = spec_for(Settings(ca_bundle=bundle))
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        assert spec.environment[name] == CA_BUNDLE_PATH
    assert spec.ca_bundle == bundle.resolve()


def test_passthrough_only_for_listed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY_FOR_SANDBOX", "http://proxy:3128")
    monkeypatch.setenv("CONTROLLER_SECRET", "s3cret")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    settings = Settings(env_passthrough=["HTTPS_PROXY_FOR_SANDBOX", "NOT_SET_ANYWHERE"])
    env = spec_for(settings).environment
    assert env["HTTPS_PROXY_FOR_SANDBOX"] == "http://proxy:3128"
    assert "NOT_SET_ANYWHERE" not in env
    assert "CONTROLLER_SECRET" not in env
    assert "PATH" not in env and "HOME" not in env


def test_spec_is_immutable() -> None:
    spec = spec_for()
    with pytest.raises(AttributeError):
        spec.user = "0:0"  # type: ignore[misc]


# -- The Docker translation: the host config the backend asks for ------------------


class RecordingAPI:
    def __init__(self) -> None:
        self.host_config: dict[str, Any] = {}

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        self.host_config = kwargs
        return kwargs


class RecordingClient:
    def __init__(self) -> None:
        self.api = RecordingAPI()


def host_config(spec: ContainerSpec) -> dict[str, Any]:
    client = RecordingClient()
    backend = DockerBackend(Settings(), client=client)  # type: ignore[arg-type]
    return backend._host_config(spec)


def test_host_config_memory_equals_swap_and_hardening_is_kept() -> None:
    spec = spec_for(lim=limits(memory_mb=768, cpus=0.5))
    config = host_config(spec)
    assert config["mem_limit"] == 768 * MiB
    assert config["memswap_limit"] == config["mem_limit"]
    assert config["mem_reservation"] == spec.memory_reservation_bytes
    assert config["nano_cpus"] == 500_000_000
    assert config["pids_limit"] == spec.pids_limit
    assert config["read_only"] is True
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges:true", f"seccomp={seccomp_profile()}"]
    assert config["tmpfs"] == spec.tmpfs
    assert config["init"] is False  # the bootstrap is pid 1 (no docker-init holding stdout)
    assert config["network_mode"] == "none"
    assert config["mounts"] is None
    assert config["log_config"]["Type"] == "none"


def test_host_config_network_and_ca_bundle_mount(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    spec = spec_for(Settings(ca_bundle=bundle), needs_install=True)
    config = host_config(spec)
    assert config["network_mode"] == "bridge"
    [mount] = config["mounts"]
    assert mount["Type"] == "bind" and mount["ReadOnly"] is True
    assert (mount["Source"], mount["Target"]) == (str(bundle.resolve()), CA_BUNDLE_PATH)
    assert "binds" not in config  # -v binds would create a missing source on the host


def test_host_config_egress_sockets_mount(tmp_path: Path) -> None:
    spec = dataclasses.replace(spec_for(), egress_dir=tmp_path)
    config = host_config(spec)
    assert config["network_mode"] == "none"  # egress goes through the proxy's sockets only
    [mount] = config["mounts"]
    assert mount["Type"] == "bind" and mount["ReadOnly"] is True
    assert (mount["Source"], mount["Target"]) == (str(tmp_path), EGRESS_MOUNT)


def test_owner_label_is_alive_for_this_process_and_dead_for_a_gone_one() -> None:
    import subprocess
    import sys

    assert owner_is_dead(owner_label()) is False
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ai_data_agent.executor.owner import owner_label; print(owner_label())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert owner_is_dead(child.stdout.strip()) is True  # that process has exited
    assert owner_is_dead("other-boot:4026531836:1:1") is False  # cannot judge: kept
    assert owner_is_dead("garbage") is False
