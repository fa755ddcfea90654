"""Private Docker engines for the tests that must not touch the machine's own.

    engine = PrivateEngine.create(Path(tempfile.mkdtemp(dir="/run")), "w1")
    engine.load(image)                 # `docker save` from the shared engine, `docker load` here
    engine.sandboxes()                 # managed containers now: id -> run id
    watch = engine.watch_starts(); ...; watch.stop()   # run ids of the sandboxes started
    engine.stop(); engine.start()      # a restart, as the chaos tests do

Each has its own data root, exec root, socket, containerd namespace and network
namespace (``unshare --net``), no bridge and no iptables, so nothing of the
shared engine is touched; runsc is registered where it is installed. Needs root
and dockerd. Containers here have no network: nothing installs requirements.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

from ai_data_agent.executor.spec import LABEL_MANAGED, LABEL_RUN_ID

__all__ = ["API_VERSION", "PrivateEngine", "StartWatch"]

# A fixed API version (Docker 20.10): "auto" would connect in the constructor, and a
# failure there leaks the half-made client's socket.
API_VERSION = "1.41"
RUNSC = Path("/usr/bin/runsc")


@dataclass
class PrivateEngine:
    """A dockerd this test run started under ``root`` (short: a socket path is < 108 bytes)."""

    root: Path
    name: str
    image: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @classmethod
    def create(cls, root: Path, name: str) -> PrivateEngine:
        """Start one (see `start`)."""
        root.mkdir(parents=True, exist_ok=True)
        engine = cls(root, name)
        engine.start()
        return engine

    def start(self) -> None:
        """Start this engine's dockerd and wait until it answers.

        Raises:
            RuntimeError: it exited or did not answer within 60 s (its log says why).
        """
        config = self.root / "daemon.json"
        runtimes = {"runsc": {"path": str(RUNSC), "runtimeArgs": ["--network=none"]}}
        config.write_text(json.dumps({"runtimes": runtimes} if RUNSC.exists() else {}))
        # containerd allows one separator between alphanumeric runs; mkdtemp's names may
        # hold "__" or a trailing "_".
        namespace = self.name + "-" + "".join(c for c in self.root.name if c.isalnum())
        with (self.root / "dockerd.log").open("ab") as log:
            self.process = subprocess.Popen(
                # Its own network namespace: a dockerd started with --bridge=none deletes
                # the default bridge (docker0) of the namespace it runs in.
                [
                    "unshare",
                    "--net",
                    "dockerd",
                    "--config-file",
                    str(config),
                    "--data-root",
                    str(self.root / "data"),
                    "--exec-root",
                    str(self.root / "exec"),
                    "--pidfile",
                    str(self.root / "docker.pid"),
                    "-H",
                    self.url,
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                    "--ip6tables=false",
                    "--containerd-namespace",
                    namespace,
                    "--containerd-plugins-namespace",
                    f"{namespace}-plugins",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private dockerd {self.name} did not start:\n{self.log()}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this dockerd (its pid only) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _accepts(self) -> bool:
        """The socket takes connections. (docker-py leaks the socket of a failed connect,
        which warns later, in whichever test the collector runs.)"""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.root / "docker.sock"))
            except OSError:
                return False
        return True

    def ready(self) -> bool:
        if not self._accepts():
            return False
        try:
            client = docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            return False

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version=API_VERSION, timeout=30)

    def load(self, image: str) -> None:
        """Copy ``image`` from the shared engine (``docker save | docker load``)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        try:
            subprocess.run(
                ["docker", "-H", self.url, "load", "-q"],
                stdin=save.stdout,
                check=True,
                capture_output=True,
                timeout=300,
            )
        finally:
            assert save.stdout is not None
            save.stdout.close()
        assert save.wait(60) == 0
        self.image = image

    def sandboxes(self) -> dict[str, str]:
        """Managed containers now: id -> run id."""
        client = self.client()
        try:
            found = client.api.containers(all=True, filters={"label": LABEL_MANAGED})
        finally:
            client.close()
        return {c["Id"][:12]: (c.get("Labels") or {}).get(LABEL_RUN_ID, "") for c in found}

    def remove_sandboxes(self) -> list[str]:
        """Remove the managed containers left here; their ids."""
        leftovers = list(self.sandboxes())
        for cid in leftovers:
            subprocess.run(["docker", "-H", self.url, "rm", "-f", cid], capture_output=True)
        return leftovers

    def watch_starts(self) -> StartWatch:
        """Record the run id of every sandbox started from now on (until `StartWatch.stop`).

        Live, because an engine keeps only its last 256 events for later queries.
        """
        return StartWatch(self)

    def log(self) -> str:
        try:
            return (self.root / "dockerd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


class StartWatch:
    def __init__(self, engine: PrivateEngine) -> None:
        self._client = engine.client()
        self._stream = self._client.api.events(
            decode=True, filters={"type": "container", "event": "start", "label": LABEL_MANAGED}
        )
        self.run_ids: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                if LABEL_RUN_ID in attributes:  # not helpers, e.g. a volume's owner
                    self.run_ids.append(attributes[LABEL_RUN_ID])
        except Exception:  # the stream is closed by stop()
            return

    def stop(self) -> list[str]:
        time.sleep(1.0)  # the last starts reach the stream
        self._stream.close()
        self._thread.join(5)
        self._client.close()
        return self.run_ids
