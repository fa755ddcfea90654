"""The raw Docker floor: hello world in a container with a sandbox's settings, nothing else.

    floor = Floor(docker.from_env(), image)
    seconds, stdout = floor.run_once()       # create, attach, start, read, wait, remove

The container gets every setting a sandbox gets (user 1000:1000, no network,
read-only root, the same /tmp tmpfs, memory = memory+swap 2 GiB, one CPU, 256
pids, all capabilities dropped, no-new-privileges, an init, no log driver) and
runs ``python3 -c "print('hello world')"`` directly: no runner, no protocol.
Its containers carry the label ``ai-data-agent-bench=floor`` (not the
project's managed label, so no sweep of the product touches them) and
`Floor.cleanup` removes any left behind. ``run_once(lean=True)`` creates the
container as sandboxes without a network are: with the network disabled, so
the engine skips its network setup, and the hosts file it then does not write
bind-mounted (`ai_data_agent.executor.docker.hosts`). A diagnostic: the floor
itself stays what ``docker run --network none`` costs.

``python -m bench.floor`` runs one floor hello world and prints the process's
VmRSS in bytes: the memory of the smallest possible controller.
"""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

import docker
from docker.types import LogConfig, Mount

from ai_data_agent.executor.docker.hosts import HostsFile

__all__ = ["BENCH_LABEL", "HELLO", "Floor", "vm_rss"]

BENCH_LABEL = "ai-data-agent-bench"
HELLO = "print('hello world')"
MiB = 1024 * 1024


def vm_rss(pid: int | str = "self") -> int | None:
    """Resident set size of ``pid`` in bytes, from /proc/<pid>/status (None if gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Floor:
    """Hello-world containers with a sandbox's settings through docker-py's low-level API."""

    def __init__(self, client: docker.DockerClient, image: str) -> None:
        self.api = client.api
        self.image = image
        self.hosts = HostsFile.default()

    def _host_config(self, hosts: Mount | None) -> Any:
        extra: dict[str, Any] = {"mounts": [hosts]} if hosts is not None else {}
        return self.api.create_host_config(
            read_only=True,
            tmpfs={"/tmp": "rw,exec,nosuid,nodev,size=1024m,mode=1777"},  # noqa: S108 - in the container
            mem_limit=2048 * MiB,
            memswap_limit=2048 * MiB,
            mem_reservation=512 * MiB,
            nano_cpus=int(1e9),
            pids_limit=256,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            init=True,
            log_config=LogConfig(type="none"),
            network_mode="none",
            **extra,
        )

    def run_once(self, code: str = HELLO, *, lean: bool = False) -> tuple[float, str]:
        """One container start to removal; (wall seconds, stdout).

        Raises:
            RuntimeError: the container did not print what it should have, or
                ``lean`` and the hosts file cannot be written.
            docker.errors.DockerException: the engine failed (the container is removed).
        """
        hosts = self.hosts.mount() if lean else None
        if lean and hosts is None:
            raise RuntimeError(f"cannot write {self.hosts.path} for the lean floor")
        started = time.perf_counter()
        container_id = None
        try:
            container_id = self.api.create_container(
                self.image,
                command=["python3", "-c", code],
                user="1000:1000",
                host_config=self._host_config(hosts),
                labels={BENCH_LABEL: "floor"},
                stdin_open=True,
                detach=False,
                network_disabled=lean,
                use_config_proxy=False,
            )["Id"]
            # Attach before start, as the sandbox does, so no output is lost.
            response = self.api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            sock: socket.socket = getattr(response, "_sock", response)
            self.api.start(container_id)
            sock.shutdown(socket.SHUT_WR)
            data = bytearray()
            sock.settimeout(60)
            while chunk := sock.recv(65536):
                data += chunk
            sock.close()
            status = self.api.wait(container_id, timeout=60).get("StatusCode")
        finally:
            if container_id is not None:
                self.api.remove_container(container_id, force=True, v=True)
        stdout = _demux_stdout(bytes(data))
        if status != 0 or "hello" not in stdout:
            raise RuntimeError(f"floor container exited {status} with {stdout!r}")
        return time.perf_counter() - started, stdout

    def cleanup(self) -> int:
        """Remove the benchmark's containers left behind (floor, peers); return how many."""
        leftovers = self.api.containers(all=True, filters={"label": BENCH_LABEL})
        for info in leftovers:
            try:
                self.api.remove_container(info["Id"], force=True, v=True)
            except docker.errors.NotFound:
                pass
        return len(leftovers)


def _demux_stdout(raw: bytes) -> str:
    """The stdout frames of Docker's multiplexed attach stream."""
    out = bytearray()
    while len(raw) >= 8:
        size = int.from_bytes(raw[4:8], "big")
        if raw[0] == 1:
            out += raw[8 : 8 + size]
        raw = raw[8 + size :]
    return out.decode("utf-8", "replace")


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else "ai-data-agent/base:bookworm"
    Floor(docker.from_env(), image).run_once()
    print(vm_rss())
    return 0


if __name__ == "__main__":
    sys.exit(main())
