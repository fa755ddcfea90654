"""What a sandbox container looks like, as plain data (`ContainerSpec`).

`build_spec` turns settings, resolved limits and a run id into the full list of
container settings. It does no I/O (beyond reading the packaged seccomp profile,
``seccomp.json``, once per process), so unit tests pin every hardening choice;
the Docker backend only translates the spec into API calls.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ai_data_agent.executor.owner import owner_label
from ai_data_agent.models import Limits
from ai_data_agent.sandbox.bootstrap import source_of
from ai_data_agent.settings import Settings

__all__ = [
    "CA_BUNDLE_PATH",
    "EGRESS_MOUNT",
    "ENVS_MOUNT",
    "LABEL_CONTROLLER",
    "LABEL_DEADLINE",
    "LABEL_MANAGED",
    "LABEL_OWNER",
    "LABEL_PREFIX",
    "LABEL_RUN_ID",
    "SANDBOX_USER",
    "STAGE_MOUNT",
    "UV_CACHE_MOUNT",
    "ContainerSpec",
    "VolumeMount",
    "build_spec",
    "sandbox_command",
    "sandbox_security_opt",
    "seccomp_profile",
]

LABEL_PREFIX = "ai-data-agent."
LABEL_MANAGED = LABEL_PREFIX + "managed"
LABEL_RUN_ID = LABEL_PREFIX + "run-id"
LABEL_CONTROLLER = LABEL_PREFIX + "controller"
LABEL_DEADLINE = LABEL_PREFIX + "deadline"
LABEL_OWNER = LABEL_PREFIX + "owner"  # the controller process, see `owner`
SANDBOX_USER = "1000:1000"
CA_BUNDLE_PATH = "/etc/ai-data-agent/ca-bundle.crt"
ENVS_MOUNT = "/opt/ai-data-agent/envs"  # the shared, read-only environment cache
STAGE_MOUNT = "/opt/ai-data-agent/stage"  # an install's staging volume, in its own sandbox
UV_CACHE_MOUNT = "/opt/ai-data-agent/uv-cache"  # uv's download cache, in install sandboxes
EGRESS_MOUNT = "/opt/ai-data-agent/egress"  # the sandbox's own egress sockets (`egress.proxy`)
# Extra time a sandbox may live beyond install + timeout before a sweep may
# remove it as abandoned.
SWEEP_SLACK_S = 120


@functools.cache
def sandbox_command() -> tuple[str, ...]:
    """Every sandbox's command: `sandbox.bootstrap`, isolated (-I), without site (-S).

    The bootstrap reads the runner from stdin (see `delivery`).
    """
    return ("python3", "-I", "-S", "-c", source_of("bootstrap"))


@functools.cache
def seccomp_profile() -> str:
    """The sandboxes' seccomp profile, ``executor/seccomp.json``, as compact JSON text.

    Docker's API takes the profile inline (``seccomp=<json>``), as the docker
    CLI sends it after reading the file. Read once per process. What the
    profile denies, and why: docs/security.md (scripts/seccomp_profile.py writes it).
    """
    text = resources.files("ai_data_agent.executor").joinpath("seccomp.json").read_text("utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def sandbox_security_opt() -> tuple[str, ...]:
    """Docker ``security_opt`` of every container we start: no new privileges, our seccomp."""
    return ("no-new-privileges:true", f"seccomp={seccomp_profile()}")


@dataclass(frozen=True)
class VolumeMount:
    """A Docker named volume (never a host path) mounted into a sandbox."""

    volume: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerSpec:
    """Everything the backend needs to create one sandbox container."""

    image: str
    command: list[str]
    user: str
    environment: dict[str, str]
    labels: dict[str, str]
    memory_bytes: int
    memory_reservation_bytes: int
    nano_cpus: int
    pids_limit: int
    tmpfs: dict[str, str]
    runtime: str
    # The network attached at start (None: no network at all), and whether it
    # must be detached before user code runs.
    network: str | None
    detach_network_before_code: bool
    ca_bundle: Path | None = None
    mounts: tuple[VolumeMount, ...] = ()
    # The host folder of this sandbox's egress sockets (its lease's, set by the driver),
    # bind-mounted read-only at EGRESS_MOUNT (a socket connects on a read-only mount). A
    # sandbox with one is made for its run or session, never pooled: its profile differs.
    egress_dir: Path | None = None
    # Relative CPU weight under contention (Docker's default is 1024); background work
    # such as compiling a new environment's bytecode yields to runs.
    cpu_shares: int | None = None
    read_only: bool = True
    cap_drop: tuple[str, ...] = ("ALL",)
    security_opt: tuple[str, ...] = field(default_factory=sandbox_security_opt)

    def profile(self) -> tuple[object, ...]:
        """Everything but the labels: two specs with one profile make the same sandbox."""
        return tuple(
            tuple(sorted(value.items()))
            if isinstance(value, dict)
            else tuple(value)
            if isinstance(value, list)
            else value
            for name, value in vars(self).items()
            if name != "labels"
        )


def sandbox_environment(settings: Settings) -> dict[str, str]:
    """The documented variables every sandbox gets on top of its image's own."""
    env = {
        "PYTHONUNBUFFERED": "1",  # live output
        "PYTHONDONTWRITEBYTECODE": "1",  # nothing to cache in a throwaway container
        "PIP_NO_INPUT": "1",
        "MPLBACKEND": "Agg",  # no display in a sandbox
    }
    if settings.ca_bundle is not None:
        for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
            env[name] = CA_BUNDLE_PATH
    env.update(settings.passthrough_env())
    return env


def build_spec(
    settings: Settings,
    limits: Limits,
    *,
    image: str,
    run_id: str,
    controller_id: str,
    needs_install: bool,
    mounts: tuple[VolumeMount, ...] = (),
    extra_lifetime_s: float = 0.0,
    now: float | None = None,
) -> ContainerSpec:
    """The container for one run.

    The install network is attached only when there is something to install
    (or the request may use the network); it is detached before user code
    unless the request has network access.
    """
    started = time.time() if now is None else now
    deadline = (
        started + settings.install_timeout_s + limits.timeout_s + SWEEP_SLACK_S + extra_lifetime_s
    )
    memory = limits.memory_mb * 1024 * 1024
    network = settings.install_network if (needs_install or limits.network) else None
    return ContainerSpec(
        image=image,
        command=list(sandbox_command()),
        user=SANDBOX_USER,
        environment=sandbox_environment(settings),
        labels={
            LABEL_MANAGED: "true",
            LABEL_RUN_ID: run_id,
            LABEL_CONTROLLER: controller_id,
            LABEL_OWNER: owner_label(),
            LABEL_DEADLINE: str(int(deadline)),
        },
        memory_bytes=memory,
        memory_reservation_bytes=min(settings.memory_reservation_mb * 1024 * 1024, memory),
        nano_cpus=int(limits.cpus * 1e9),
        pids_limit=settings.pids_limit,
        # exec: C extensions installed into the sandbox dir must load from /tmp.
        tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={settings.tmpfs_mb}m,mode=1777"},  # noqa: S108 (the container's mount point)
        runtime=settings.runtime,
        network=network,
        detach_network_before_code=network is not None and not limits.network,
        ca_bundle=settings.ca_bundle,
        mounts=mounts,
    )
