"""The /etc/hosts of sandboxes without a network, so the engine skips its network setup.

    hosts = HostsFile.default()    # $XDG_CACHE_HOME/ai-data-agent/sandbox-hosts
    mount = hosts.mount()   # a read-only bind at /etc/hosts, or None: keep the setup
    hosts.refused(exc)      # the engine cannot mount it: True, and never again

A container created with its network disabled (Docker's ``NetworkDisabled``)
gets no network sandbox from the engine. Above all, no ``libnetwork-setkey``
prestart hook, which runs dockerd's whole binary once more for every container:
about 0.17 s of CPU on this machine, a third of a fresh run's. Its network
namespace is still its own and holds only ``lo``, which runc and runsc bring
up: the isolation is the same as with ``--network none``.

What the engine no longer writes is /etc/hosts (resolv.conf has nothing to
say without a network), so ``localhost`` would not resolve. This module keeps
the file Docker would write in the controller's cache folder, and the sandbox
gets it bind-mounted read-only. An engine that cannot see that file (on
another machine, or a controller in a container whose folders the host lacks)
refuses the container at create, naming the file: the backend then creates it
with the engine's network setup, as before, and keeps doing so.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from docker.types import Mount
from loguru import logger

from ai_data_agent.settings import user_cache_dir

__all__ = ["HOSTS", "HOSTS_PATH", "HostsFile"]

HOSTS_PATH = "/etc/hosts"
# What Docker writes for a container with ``--network none``.
HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


class HostsFile:
    """The hosts file on the controller's side, and whether the engine takes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._usable: bool | None = None  # None: not written yet
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> HostsFile:
        """The one file in this user's cache folder, shared by every controller here."""
        return cls(user_cache_dir() / "sandbox-hosts")

    def mount(self) -> Mount | None:
        """The bind of the file at /etc/hosts; None when it cannot be written or mounted."""
        with self._lock:
            if self._usable is None:
                self._usable = self._write()
            usable = self._usable
        return Mount(HOSTS_PATH, str(self.path), type="bind", read_only=True) if usable else None

    def refused(self, error: BaseException) -> bool:
        """Whether ``error`` (from a create with `mount`) is the engine refusing the file.

        If so, `mount` says None from now on.
        """
        if str(self.path) not in str(error):
            return False
        with self._lock:
            self._usable = False
        logger.info(
            "the engine cannot mount {} ({}); sandboxes keep its network setup, "
            "about 0.2 s of CPU each",
            self.path,
            str(error)[:200],
        )
        return True

    def _write(self) -> bool:
        # Whole or not at all: other controllers on this host may mount it meanwhile.
        staging = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            if self.path.is_file() and self.path.read_text("utf-8") == HOSTS:
                return True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            staging.write_text(HOSTS, "utf-8")
            staging.chmod(0o644)
            os.replace(staging, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # none made, or its folder is not one
                staging.unlink()
            logger.info(
                "cannot write {} ({}); sandboxes keep the engine's network setup", self.path, exc
            )
            return False
        return True
