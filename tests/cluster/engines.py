"""Private Docker engines, one per worker, each in its own network namespace.

    engine = PrivateEngine.start(Path("/run/ce-xyz"), name="w1")
    engine.load(image)                 # `docker save` from the shared engine, `docker load` here
    engine.sandboxes()                 # ids of managed containers now
    engine.starts(since)               # run ids of sandbox starts since a time (docker events)
    engine.stop()

As the chaos tests do: its own data root, exec root, socket, containerd
namespace and network namespace (``unshare --net``), no bridge and no
iptables, so nothing of the shared engine is touched. Needs root and dockerd.
Containers here have no network: cluster tests install nothing.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests

from ai_data_agent.executor.spec import LABEL_MANAGED, LABEL_RUN_ID

API_VERSION = "1.41"  # Docker 20.10


@dataclass
class PrivateEngine:
    root: Path
    name: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @classmethod
    def start(cls, root: Path, name: str) -> PrivateEngine:
        engine = cls(root, name)
        root.mkdir(parents=True, exist_ok=True)
        (root / "daemon.json").write_text("{}")
        log = (root / "dockerd.log").open("ab")
        engine.process = subprocess.Popen(
            [
                "unshare",
                "--net",
                "dockerd",
                "--config-file",
                str(root / "daemon.json"),
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "--pidfile",
                str(root / "docker.pid"),
                "-H",
                engine.url,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip6tables=false",
                "--containerd-namespace",
                f"cluster-{root.name}",
                "--containerd-plugins-namespace",
                f"cluster-{root.name}-plugins",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not engine.ready():
            if engine.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private dockerd {name} did not start:\n{engine.log()}")
            time.sleep(0.2)
        return engine

    def load(self, image: str) -> None:
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", self.url, "load", "-q"],
            stdin=save.stdout,
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert save.stdout is not None
        save.stdout.close()
        assert save.wait(60) == 0

    def ready(self) -> bool:
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

    def sandboxes(self) -> dict[str, str]:
        """Managed containers now: id -> run id."""
        client = self.client()
        try:
            found = client.api.containers(all=True, filters={"label": LABEL_MANAGED})
        finally:
            client.close()
        return {c["Id"][:12]: (c.get("Labels") or {}).get(LABEL_RUN_ID, "") for c in found}

    def watch_starts(self) -> StartWatch:
        """Record the run id of every sandbox started from now on (until `StartWatch.stop`).

        Live, because an engine keeps only its last 256 events for later queries.
        """
        return StartWatch(self)

    def remove_sandboxes(self) -> list[str]:
        leftovers = list(self.sandboxes())
        for cid in leftovers:
            subprocess.run(["docker", "-H", self.url, "rm", "-f", cid], capture_output=True)
        return leftovers

    def log(self) -> str:
        try:
            return (self.root / "dockerd.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


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
