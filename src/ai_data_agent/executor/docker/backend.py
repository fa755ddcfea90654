"""The Docker implementation of the backend, on docker-py's low-level API.

    backend = DockerBackend(settings)
    session = backend.start(spec, run_id)
    backend.sweep(SweepRule(keep_controller=controller_id))

This module and its parts (`sandbox`, `volumes`, `sweep`) are the only code
that touches docker-py: every docker-py and requests
exception is translated here into `ExecutorError` with the run id, container
id and step (`DockerUnavailable` when the engine cannot be reached). A
container that was created is removed on every failure path before the error
leaves `start`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig, Mount
from loguru import logger

from ai_data_agent.errors import ConfigurationError, DockerUnavailable, ExecutorError
from ai_data_agent.executor.backend import SweepRule
from ai_data_agent.executor.docker import datafill
from ai_data_agent.executor.docker import sweep as docker_sweep
from ai_data_agent.executor.docker import volumes as docker_volumes
from ai_data_agent.executor.docker.cpu import CpuReader
from ai_data_agent.executor.docker.hosts import HostsFile
from ai_data_agent.executor.docker.sandbox import DOCKER_ERRORS, DockerSandbox
from ai_data_agent.executor.spec import (
    CA_BUNDLE_PATH,
    EGRESS_MOUNT,
    LABEL_CONTROLLER,
    ContainerSpec,
)
from ai_data_agent.settings import Settings

__all__ = ["DockerBackend", "connect"]

REMOVAL_RETRY_S = 900.0
NO_ENGINE_HELP = """\
No Docker engine answers{where}: {reason}
ai-data-agent runs every sandbox as a container, so it needs a running engine:
  - install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io) and start it
    (sudo systemctl start docker, or sudo dockerd &);
  - let this user use it: sudo usermod -aG docker $USER (then log in again), or use
    rootless Docker;
  - for an engine elsewhere, set DOCKER_HOST (or AI_DATA_AGENT_DOCKER_HOST), e.g.
    unix:///run/user/1000/docker.sock or ssh://user@host.
In a clone of ai-data-agent, `sudo make engine` installs and starts one as CI does."""


def connect(settings: Settings) -> docker.DockerClient:
    """A client for the configured engine, checked with a ping.

    Raises:
        DockerUnavailable: the engine does not answer; the message says how to fix it.
    """
    try:
        if settings.docker_host:
            client = docker.DockerClient(
                base_url=settings.docker_host, timeout=int(settings.docker_timeout_s)
            )
        else:
            client = docker.from_env(timeout=int(settings.docker_timeout_s))
        client.ping()
    except DOCKER_ERRORS as exc:
        # docker.from_env reads DOCKER_HOST; say which endpoint did not answer.
        endpoint = settings.docker_host or os.environ.get("DOCKER_HOST")
        where = f" at {endpoint}" if endpoint else ""
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        raise DockerUnavailable(
            NO_ENGINE_HELP.format(where=where, reason=reason), step="connect"
        ) from exc
    return client


class DockerBackend:
    """Starts sandbox containers on a Docker engine, per the settings."""

    def __init__(self, settings: Settings, client: docker.DockerClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._image: str | None = None
        self._image_lock = threading.Lock()
        self._pending: set[str] = set()  # sandboxes whose removal failed, retried
        self._pending_lock = threading.Lock()
        self._hosts = HostsFile.default()

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def close(self) -> None:
        """Try pending removals once more, then close the engine connection.

        Idempotent; a later call reconnects.
        """
        with self._pending_lock:
            pending = sorted(self._pending)
        for container_id in pending:
            self._try_remove(container_id)
        if self._client is not None:
            self._client.close()
            self._client = None

    def _try_remove(self, container_id: str) -> bool:
        try:
            self.client.api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS:
            return False
        with self._pending_lock:
            self._pending.discard(container_id)
        return True

    def _remove_later(self, container_id: str) -> None:
        """Keep trying to remove a sandbox whose removal failed (say, while the engine
        restarts), with a growing pause, for up to `REMOVAL_RETRY_S`, and once more
        at `close`; the deadline sweep is the last resort (if this process dies)."""
        with self._pending_lock:
            self._pending.add(container_id)

        def retry() -> None:
            end = time.monotonic() + REMOVAL_RETRY_S
            pause = 1.0
            while time.monotonic() < end:
                time.sleep(pause)
                with self._pending_lock:
                    if container_id not in self._pending:
                        return  # `close` got it
                if self._try_remove(container_id):
                    logger.info("removed sandbox {} on a later try", container_id[:12])
                    return
                pause = min(pause * 2, 30.0)
            logger.warning("gave up removing {}; the deadline sweep will", container_id[:12])

        threading.Thread(target=retry, name=f"remove-{container_id[:12]}", daemon=True).start()

    # -- engine -----------------------------------------------------------------
    def ping(self) -> str:
        try:
            return str(self.client.version().get("Version", "?"))
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"the Docker engine stopped answering: {exc}") from exc

    def engine_id(self) -> str:
        try:
            return str(self.client.info().get("ID") or "default")
        except DOCKER_ERRORS as exc:
            raise DockerUnavailable(f"the Docker engine stopped answering: {exc}") from exc

    # -- image ------------------------------------------------------------------
    def _present(self, image: str) -> bool:
        try:
            self.client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return False
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot inspect image {image}: {exc}", step="image") from exc
        return True

    def _pull(self, image: str) -> str | None:
        """Pull ``image``; None on success, else the reason it failed."""
        if not self.settings.pull_missing_image:
            return "pulling is disabled (AI_DATA_AGENT_PULL_MISSING_IMAGE=false)"
        logger.info("pulling image {}", image)
        try:
            self.client.api.pull(image)
        except DOCKER_ERRORS as exc:
            return f"pull failed: {str(exc).strip()[:300]}"
        return None

    def resolve_image(self) -> str:
        """The sandbox image, resolved once per backend.

        Raises:
            ConfigurationError: the image is missing and cannot be pulled (and,
                for the default image, the local fallback is missing too).
        """
        with self._image_lock:
            if self._image is None:
                self._image = self._resolve_image()
            return self._image

    def check_image(self) -> str:
        image = self.resolve_image()
        if not self._present(image):  # removed since it was resolved
            raise ConfigurationError(f"sandbox image {image!r} is no longer present")
        return image

    def image_id(self, image: str) -> str:
        try:
            return str(self.client.api.inspect_image(image)["Id"])
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot inspect image {image}: {exc}", step="image") from exc

    def _resolve_image(self) -> str:
        image = self.settings.sandbox_image
        if self._present(image):
            return image
        reason = self._pull(image)
        if reason is None:
            return image
        if self.settings.image_is_explicit:
            raise ConfigurationError(
                f"sandbox image {image!r} is not present and {reason}. Pull or build it, or unset "
                f"AI_DATA_AGENT_SANDBOX_IMAGE to use the local base image (`make images`)."
            )
        fallback = self.settings.fallback_image
        if self._present(fallback):
            # Said on every resolve; `once` lets the CLI say it once per user and images.
            logger.bind(once=f"image-fallback:{image}:{fallback}").warning(
                "fallback_triggered: sandbox image {} unavailable ({}); using local {} "
                "(set AI_DATA_AGENT_SANDBOX_IMAGE to choose the image and skip this check)",
                image,
                reason,
                fallback,
            )
            return fallback
        raise ConfigurationError(
            f"sandbox image {image!r} is not present and {reason}; the local fallback "
            f"{fallback!r} is missing too. Build it with `make images`."
        )

    # -- containers -------------------------------------------------------------
    def _host_config(self, spec: ContainerSpec, hosts: Mount | None = None) -> dict[str, Any]:
        mounts = [
            Mount(m.target, m.volume, type="volume", read_only=m.read_only) for m in spec.mounts
        ]
        if hosts is not None:
            mounts.append(hosts)
        if spec.ca_bundle is not None:
            # A bind mount, not a -v bind: a source missing on the engine's host is an
            # error here, where -v would create it there as an empty directory.
            mounts.append(Mount(CA_BUNDLE_PATH, str(spec.ca_bundle), type="bind", read_only=True))
        if spec.egress_dir is not None:
            mounts.append(Mount(EGRESS_MOUNT, str(spec.egress_dir), type="bind", read_only=True))
        result: dict[str, Any] = self.client.api.create_host_config(
            read_only=spec.read_only,
            tmpfs=spec.tmpfs,
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,  # swap equal to memory: no swap on top
            mem_reservation=spec.memory_reservation_bytes,
            nano_cpus=spec.nano_cpus,
            cpu_shares=spec.cpu_shares,
            pids_limit=spec.pids_limit,
            cap_drop=list(spec.cap_drop),
            security_opt=list(spec.security_opt),
            # No docker-init: the bootstrap is pid 1, and holds none of the runner's channel
            # (see `sandbox.bootstrap`); an engine's default init would hold it open to user code.
            init=False,
            log_config=LogConfig(type="none"),
            network_mode=spec.network or "none",
            runtime=spec.runtime,
            mounts=mounts or None,
        )
        return result

    def start(self, spec: ContainerSpec, run_id: str) -> DockerSandbox:
        api = self.client.api
        container_id: str | None = None
        sock: Any = None
        step = "create"
        try:
            container_id = self._create(spec)
            step = "attach"
            sock = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            step = "start"
            api.start(container_id)
        except BaseException as exc:  # Ctrl-C included: never leave a half-started container
            for closable in (getattr(sock, "_sock", None), sock):
                if closable is not None:
                    closable.close()
            if container_id is not None:
                try:
                    api.remove_container(container_id, force=True, v=True)
                except DOCKER_ERRORS as cleanup_exc:
                    logger.bind(run_id=run_id).warning(
                        "cannot remove half-started container {}: {}",
                        container_id[:12],
                        cleanup_exc,
                    )
            if not isinstance(exc, DOCKER_ERRORS):
                raise
            raise ExecutorError(
                f"cannot {step} the sandbox container: {type(exc).__name__}: {exc}",
                run_id=run_id,
                container_id=container_id,
                step=step,
            ) from exc
        usage_ns = CpuReader(self.client.api).usage_ns
        return DockerSandbox(
            self.client, container_id, sock, spec, run_id, self._remove_later, usage_ns
        )

    def _create(self, spec: ContainerSpec) -> str:
        """Create the container: without a network, skipping the engine's network setup
        (see `hosts`), unless the engine cannot mount the hosts file that needs."""
        hosts = self._hosts.mount() if spec.network is None else None
        try:
            return self._create_container(spec, hosts)
        except docker.errors.APIError as exc:
            if hosts is None or not self._hosts.refused(exc):
                raise
        return self._create_container(spec, None)

    def _create_container(self, spec: ContainerSpec, hosts: Mount | None) -> str:
        created = self.client.api.create_container(
            spec.image,
            command=spec.command,
            user=spec.user,
            environment=spec.environment,
            labels=spec.labels,
            host_config=self._host_config(spec, hosts),
            stdin_open=True,  # with detach=False this also sets StdinOnce
            detach=False,
            network_disabled=hosts is not None,
            use_config_proxy=False,  # nothing from the controller's docker config
        )
        return str(created["Id"])

    def sandboxes(self, controller_id: str) -> list[str]:
        try:
            found = self.client.api.containers(
                all=True, filters={"label": f"{LABEL_CONTROLLER}={controller_id}"}
            )
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot list sandbox containers: {exc}", step="sweep") from exc
        return [str(info["Id"]) for info in found]

    def sweep(self, rule: SweepRule) -> list[str]:
        return docker_sweep.sweep(self.client.api, rule)

    # -- volumes ----------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        docker_volumes.ensure_volume(
            self.client.api, name, labels, self.resolve_image(), self.settings.runtime
        )

    def remove_volume(self, name: str) -> None:
        docker_volumes.remove_volume(self.client.api, name)

    def volume_labels(self, name: str) -> dict[str, str] | None:
        return datafill.volume_labels(self.client.api, name)

    def fill_volume(self, name: str, labels: dict[str, str], archive: Iterable[bytes]) -> None:
        datafill.fill_volume(self.client.api, name, labels, archive, self.resolve_image())
