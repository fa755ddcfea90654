"""The Docker implementation of the backend, on docker-py's low-level API.

All docker-py and requests exceptions are translated here, and only here, into
`ExecutorError` with the run id, container id and step. A container that was
created is removed on every failure path before the error leaves `start`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount
from loguru import logger

from ai_data_agent.errors import ConfigurationError, DockerUnavailable, ExecutorError
from ai_data_agent.executor.backend import ExitState
from ai_data_agent.executor.owner import owner_is_dead, owner_label
from ai_data_agent.executor.spec import (
    CA_BUNDLE_PATH,
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_RUN_ID,
    SANDBOX_USER,
    ContainerSpec,
)
from ai_data_agent.settings import Settings

__all__ = ["DockerBackend", "DockerSession", "connect"]

DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)
HEADER_SIZE = 8
REMOVAL_RETRY_S = 900.0
SANDBOX_UID = int(SANDBOX_USER.split(":")[0])


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
        raise DockerUnavailable(
            f"cannot reach the Docker engine ({type(exc).__name__}: {exc}); is dockerd running "
            "and is this user allowed to use its socket?",
            step="connect",
        ) from exc
    return client


class DockerSession:
    """A started sandbox container with its attach socket (stdin, stdout, stderr)."""

    def __init__(
        self, client: docker.DockerClient, container_id: str, sock: Any, spec: ContainerSpec,
        run_id: str, on_remove_failed: Callable[[str], None],
    ) -> None:  # fmt: skip
        self._on_remove_failed = on_remove_failed
        self._api = client.api
        self._id = container_id
        self._response_holder = sock  # keeps the HTTP response (and socket) alive
        self._sock: socket.socket = getattr(sock, "_sock", sock)
        self._spec = spec
        self._run_id = run_id
        self._buffer = bytearray()
        self._eof = False
        self._removed = False

    @property
    def container_id(self) -> str:
        return self._id

    def _error(self, message: str, step: str, exc: BaseException) -> ExecutorError:
        return ExecutorError(
            f"{message}: {type(exc).__name__}: {exc}",
            run_id=self._run_id, container_id=self._id, step=step,
        )  # fmt: skip

    def send(self, data: bytes) -> None:
        try:
            self._sock.settimeout(30)
            self._sock.sendall(data)
        except OSError as exc:
            raise self._error("cannot write to the sandbox", "attach", exc) from exc

    def close_stdin(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the container may already be gone; nothing to close then

    def _take_frame(self) -> tuple[int, bytes] | None:
        if len(self._buffer) < HEADER_SIZE:
            return None
        size = int.from_bytes(self._buffer[4:8], "big")
        if len(self._buffer) < HEADER_SIZE + size:
            return None
        stream = self._buffer[0]
        data = bytes(self._buffer[HEADER_SIZE : HEADER_SIZE + size])
        del self._buffer[: HEADER_SIZE + size]
        return stream, data

    def read(self, timeout_s: float) -> tuple[int, bytes] | None:
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            if self._eof:
                return 0, b""
            try:
                self._sock.settimeout(max(timeout_s, 0.001))
                chunk = self._sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise self._error("lost the sandbox's output stream", "execute", exc) from exc
            if not chunk:
                self._eof = True
            self._buffer += chunk

    def detach_network(self) -> None:
        network = self._spec.network
        if network is None:
            return
        try:
            self._api.disconnect_container_from_network(self._id, network, force=True)
            attached = self._api.inspect_container(self._id)["NetworkSettings"]["Networks"] or {}
        except DOCKER_ERRORS as exc:
            raise self._error("cannot detach the install network", "network", exc) from exc
        if attached:
            raise ExecutorError(
                f"networks {sorted(attached)} still attached after disconnect",
                run_id=self._run_id, container_id=self._id, step="network",
            )  # fmt: skip

    def kill(self) -> None:
        try:
            self._api.kill(self._id)
        except DOCKER_ERRORS:
            pass  # already stopped (or gone): the goal is reached either way

    def exit_state(self, timeout_s: float) -> ExitState:
        try:
            status = self._api.wait(self._id, timeout=max(int(timeout_s), 1))
            state = self._api.inspect_container(self._id)["State"]
        except requests.exceptions.ReadTimeout:
            self.kill()
            return ExitState(exit_code=None, oom_killed=False)
        except DOCKER_ERRORS as exc:
            raise self._error("cannot read the sandbox's exit state", "collect", exc) from exc
        code = status.get("StatusCode")
        return ExitState(exit_code=code, oom_killed=bool(state.get("OOMKilled")))

    def remove(self) -> None:
        if self._removed:
            return
        for closable in (self._sock, self._response_holder):
            try:
                closable.close()
            except OSError:
                pass
        try:
            self._api.remove_container(self._id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # Someone else (a sweep) is removing it already: the goal is reached.
            if exc.status_code != 409 or "already in progress" not in str(exc):
                self._on_remove_failed(self._id)
                raise self._error("cannot remove the sandbox", "remove", exc) from exc
        except DOCKER_ERRORS as exc:
            self._on_remove_failed(self._id)
            raise self._error("cannot remove the sandbox", "remove", exc) from exc
        self._removed = True


class DockerBackend:
    """Starts sandbox containers on a Docker engine, per the settings."""

    def __init__(self, settings: Settings, client: docker.DockerClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._image: str | None = None
        self._image_lock = threading.Lock()
        self._pending: set[str] = set()  # sandboxes whose removal failed, retried
        self._pending_lock = threading.Lock()

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
            logger.warning(
                "fallback_triggered: sandbox image {} unavailable ({}); using local {}",
                image, reason, fallback,
            )  # fmt: skip
            return fallback
        raise ConfigurationError(
            f"sandbox image {image!r} is not present and {reason}; the local fallback "
            f"{fallback!r} is missing too. Build it with `make images`."
        )

    # -- containers -------------------------------------------------------------
    def _host_config(self, spec: ContainerSpec) -> dict[str, Any]:
        binds = {}
        if spec.ca_bundle is not None:
            binds[str(spec.ca_bundle)] = {"bind": CA_BUNDLE_PATH, "mode": "ro"}
        result: dict[str, Any] = self.client.api.create_host_config(
            binds=binds or None,
            read_only=spec.read_only,
            tmpfs=spec.tmpfs,
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,  # swap equal to memory: no swap on top
            mem_reservation=spec.memory_reservation_bytes,
            nano_cpus=spec.nano_cpus,
            pids_limit=spec.pids_limit,
            cap_drop=list(spec.cap_drop),
            security_opt=list(spec.security_opt),
            init=True,
            log_config=LogConfig(type="none"),
            network_mode=spec.network or "none",
            runtime=spec.runtime,
            mounts=[
                Mount(m.target, m.volume, type="volume", read_only=m.read_only) for m in spec.mounts
            ]
            or None,
        )
        return result

    def start(self, spec: ContainerSpec, run_id: str) -> DockerSession:
        api = self.client.api
        container_id: str | None = None
        sock: Any = None
        step = "create"
        try:
            created = api.create_container(
                spec.image,
                command=spec.command,
                user=spec.user,
                environment=spec.environment,
                labels=spec.labels,
                host_config=self._host_config(spec),
                stdin_open=True,  # with detach=False this also sets StdinOnce
                detach=False,
                use_config_proxy=False,  # nothing from the controller's docker config
            )
            container_id = created["Id"]
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
                        "cannot remove half-started container {}: {}", container_id[:12],
                        cleanup_exc,
                    )  # fmt: skip
            if not isinstance(exc, DOCKER_ERRORS):
                raise
            raise ExecutorError(
                f"cannot {step} the sandbox container: {type(exc).__name__}: {exc}",
                run_id=run_id, container_id=container_id, step=step,
            ) from exc  # fmt: skip
        return DockerSession(self.client, container_id, sock, spec, run_id, self._remove_later)

    # -- volumes ----------------------------------------------------------------
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create the named volume if needed, owned by the sandbox user.

        A new volume's root belongs to root; a one-shot container (our code
        only: root with CAP_CHOWN alone, no network, read-only) hands it over.
        """
        api = self.client.api
        try:
            existing = api.inspect_volume(name)
        except docker.errors.NotFound:
            existing = None
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot inspect volume {name}: {exc}", step="volume") from exc
        if existing is not None and (existing.get("Labels") or {}).items() >= labels.items():
            return
        # New, or made by Docker itself when a container mounted it first (no labels,
        # root-owned): recreate it with our labels and the sandbox user as owner.
        if existing is not None:
            try:
                api.remove_volume(name)
            except DOCKER_ERRORS as exc:
                raise ExecutorError(
                    f"volume {name} exists without our labels and cannot be replaced "
                    f"(in use?): {exc}", step="volume",
                ) from exc  # fmt: skip
        container_id = None
        try:
            api.create_volume(name, labels=labels)
            host_config = api.create_host_config(
                mounts=[Mount("/v", name, type="volume")],
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                cap_add=["CHOWN"],
                security_opt=["no-new-privileges:true"],
                log_config=LogConfig(type="none"),
                pids_limit=16,
                mem_limit=64 * 1024 * 1024,
                runtime=self.settings.runtime,
            )
            chown = f"import os; os.chown('/v', {SANDBOX_UID}, {SANDBOX_UID})"
            container_id = api.create_container(
                self.resolve_image(), command=["python3", "-I", "-c", chown], user="0:0",
                host_config=host_config, labels={LABEL_MANAGED: "true", LABEL_OWNER: owner_label(),
                LABEL_DEADLINE: str(int(time.time()) + 300)}, use_config_proxy=False,
            )["Id"]  # fmt: skip
            api.start(container_id)
            status = api.wait(container_id, timeout=60).get("StatusCode")
            if status != 0:
                raise ExecutorError(f"cannot prepare volume {name}: chown exited {status}",
                                    step="volume")  # fmt: skip
        except (*DOCKER_ERRORS, ExecutorError) as exc:
            # A volume left root-owned would look ready next time: take it away.
            try:
                api.remove_volume(name, force=True)
            except DOCKER_ERRORS:
                pass
            if isinstance(exc, ExecutorError):
                raise
            raise ExecutorError(f"cannot prepare volume {name}: {exc}", step="volume") from exc
        finally:
            if container_id is not None:
                try:
                    api.remove_container(container_id, force=True)
                except DOCKER_ERRORS as exc:
                    logger.warning("cannot remove volume helper {}: {}", container_id[:12], exc)

    def remove_volume(self, name: str) -> None:
        try:
            self.client.api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot remove volume {name}: {exc}", step="volume") from exc

    def image_id(self, image: str) -> str:
        try:
            return str(self.client.api.inspect_image(image)["Id"])
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot inspect image {image}: {exc}", step="image") from exc

    def sweep(
        self,
        *,
        keep_controller: str | None = None,
        all_controllers: bool = False,
        run_ids: tuple[str, ...] = (),
    ) -> list[str]:
        """Remove leftover sandboxes and staging volumes; return their ids.

        A sandbox goes when its deadline label has passed, when the controller
        process that owns it provably died (see `owner`), or when its run is one
        of ``run_ids`` (runs a restarted daemon knows were cut short). With
        ``all_controllers`` every sandbox goes (``sweep --all``). Those of
        ``keep_controller`` always stay. Live controllers sharing the engine
        are never touched otherwise.
        """
        try:
            containers = self.client.api.containers(all=True, filters={"label": LABEL_MANAGED})
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot list sandbox containers: {exc}", step="sweep") from exc
        now = time.time()
        removed = []
        for info in containers:
            labels = info.get("Labels") or {}
            if not _doomed(labels, keep_controller, all_controllers, run_ids, now):
                continue
            try:
                self.client.api.remove_container(info["Id"], force=True, v=True)
                removed.append(info["Id"])
            except docker.errors.NotFound:
                pass
            except DOCKER_ERRORS as exc:
                logger.warning("sweep: cannot remove {}: {}", info["Id"][:12], exc)
        removed += self._sweep_volumes(keep_controller, all_controllers, now)
        if removed:
            logger.info(
                "sweep removed {} leftover sandbox container(s) and volume(s)", len(removed)
            )
        return removed

    def _sweep_volumes(
        self, keep_controller: str | None, all_controllers: bool, now: float
    ) -> list[str]:
        """Staging volumes of installs that never finished (the cache itself is not managed)."""
        try:
            volumes = self.client.api.volumes(filters={"label": LABEL_MANAGED}).get("Volumes") or []
        except DOCKER_ERRORS as exc:
            raise ExecutorError(f"cannot list sandbox volumes: {exc}", step="sweep") from exc
        removed = []
        for info in volumes:
            labels = info.get("Labels") or {}
            if _doomed(labels, keep_controller, all_controllers, (), now):
                try:
                    self.client.api.remove_volume(info["Name"], force=True)
                    removed.append(info["Name"])
                except DOCKER_ERRORS as exc:  # in use, or gone already
                    logger.debug("sweep: volume {} stays: {}", info["Name"], exc)
        return removed


def _doomed(
    labels: dict[str, str],
    keep_controller: str | None,
    all_controllers: bool,
    run_ids: tuple[str, ...],
    now: float,
) -> bool:
    """The sweep's rule for one labelled container or volume (see `DockerBackend.sweep`)."""
    if keep_controller and labels.get(LABEL_CONTROLLER) == keep_controller:
        return False
    try:
        expired = float(labels.get(LABEL_DEADLINE, "0")) < now
    except ValueError:
        expired = True
    return (
        all_controllers
        or expired
        or owner_is_dead(labels.get(LABEL_OWNER, ""))
        or labels.get(LABEL_RUN_ID) in run_ids
    )
