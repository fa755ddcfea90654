"""The environment cache: each requirement set installed once, then mounted read-only.

    cache = EnvCache(settings, backend, drive)
    env, hit = cache.get_or_install(["pandas"], image, run_id)   # -> CachedEnv, bool

Layout on the engine: one named volume ``ai-data-agent-envs`` holds every
finished environment at ``<key>/``; every sandbox mounts it read-only at
`ENVS_MOUNT` and puts ``ENVS_MOUNT/<key>`` on ``PYTHONPATH`` after its own
sandbox dir. An install happens in its own sandbox (same limits; third-party
code runs there) into a fresh staging volume, never into the shared one; a
second container that runs only our code then copies the result into place
under a hidden name and renames it, so a half-finished install is never
visible and no run can modify an environment another run uses.

The index (SQLite under the data dir) is the source of truth for what is
ready; a per-key lock makes concurrent requests for one set install it once
in a process. Two controllers on one engine may both install a set; the
second copy is dropped at publish time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loguru import logger
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.owner import owner_label
from ai_data_agent.executor.spec import (
    ENVS_MOUNT,
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_PREFIX,
    VolumeMount,
)
from ai_data_agent.models import PackageInfo
from ai_data_agent.settings import Settings

__all__ = ["CachedEnv", "EnvCache", "EnvIndex", "InstallFailed", "cache_key"]

CACHE_VOLUME = "ai-data-agent-envs"
UV_CACHE_VOLUME = "ai-data-agent-uv-cache"
LABEL_CACHE = LABEL_PREFIX + "cache"
STAGE_MOUNT = "/opt/ai-data-agent/stage"
UV_CACHE_MOUNT = "/opt/ai-data-agent/uv-cache"


@dataclass(frozen=True)
class CachedEnv:
    key: str
    requirements: list[str]
    packages: list[PackageInfo]
    installer: str
    fallback_triggered: bool
    size_bytes: int
    created_at: float
    last_used_at: float
    install_s: float = 0.0
    log_tail: str = ""

    @property
    def path(self) -> str:
        """Where sandboxes see it."""
        return f"{ENVS_MOUNT}/{self.key}"


class InstallFailed(Exception):
    """The requirement set did not install; carries the install container's report."""

    def __init__(self, report: dict[str, Any], reason: str) -> None:
        super().__init__(reason)
        self.report = report
        self.reason = reason


@dataclass(frozen=True)
class DriveOutcome:
    """What an internal job container (install, publish, prune, probe) reported."""

    frame: dict[str, Any] | None
    stdout: str
    error: str | None


class JobDriver(Protocol):
    def __call__(
        self, job: dict[str, Any], *, mounts: tuple[VolumeMount, ...], needs_network: bool,
        run_id: str, uv: bool = False,
    ) -> DriveOutcome: ...  # fmt: skip


def cache_key(
    requirements: list[str], image_id: str, python: str, platform: str, flavour: str
) -> str:
    """Stable key of a requirement set: normalised, sorted, with what makes wheels differ."""
    normal = sorted(
        str(req).replace(req.name, canonicalize_name(req.name), 1)
        for req in (Requirement(line) for line in requirements)
    )
    blob = json.dumps(
        {"requirements": normal, "image": image_id, "python": python, "platform": platform,
         "flavour": flavour},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class EnvIndex:
    """What is in the cache: SQLite, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._db() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS envs (
                    key TEXT PRIMARY KEY, requirements TEXT NOT NULL, packages TEXT NOT NULL,
                    installer TEXT NOT NULL, fallback INTEGER NOT NULL, size INTEGER NOT NULL,
                    created REAL NOT NULL, last_used REAL NOT NULL, install_s REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS images (
                    image_id TEXT PRIMARY KEY, python TEXT NOT NULL, platform TEXT NOT NULL);
                """
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        yield conn

    @staticmethod
    def _env(row: tuple[Any, ...]) -> CachedEnv:
        key, reqs, packages, installer, fallback, size, created, last_used, install_s = row
        return CachedEnv(
            key=key, requirements=json.loads(reqs),
            packages=[PackageInfo(**p) for p in json.loads(packages)], installer=installer,
            fallback_triggered=bool(fallback), size_bytes=size, created_at=created,
            last_used_at=last_used, install_s=install_s,
        )  # fmt: skip

    def get(self, key: str, *, touch: bool = True) -> CachedEnv | None:
        with self._db() as db:
            if touch:
                db.execute("UPDATE envs SET last_used = ? WHERE key = ?", (time.time(), key))
            row = db.execute("SELECT * FROM envs WHERE key = ?", (key,)).fetchone()
        return self._env(row) if row else None

    def put(self, env: CachedEnv) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO envs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (env.key, json.dumps(env.requirements),
                 json.dumps([p.model_dump() for p in env.packages]), env.installer,
                 int(env.fallback_triggered), env.size_bytes, env.created_at, env.last_used_at,
                 env.install_s),
            )  # fmt: skip

    def all(self) -> list[CachedEnv]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM envs ORDER BY last_used DESC").fetchall()
        return [self._env(r) for r in rows]

    def delete(self, keys: list[str]) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM envs WHERE key = ?", [(k,) for k in keys])

    def image_info(self, image_id: str) -> tuple[str, str] | None:
        with self._db() as db:
            row = db.execute(
                "SELECT python, platform FROM images WHERE image_id = ?", (image_id,)
            ).fetchone()
        return (row[0], row[1]) if row else None

    def set_image_info(self, image_id: str, python: str, platform: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?)", (image_id, python, platform)
            )


PROBE_CODE = (
    "import json, sys, sysconfig\n"
    "print(json.dumps({'python': '%d.%d.%d' % sys.version_info[:3], "
    "'platform': sysconfig.get_platform(), 'tag': sys.implementation.cache_tag}))\n"
)


class VolumeBackend(Protocol):
    def ensure_volume(self, name: str, labels: dict[str, str]) -> None: ...
    def remove_volume(self, name: str) -> None: ...
    def image_id(self, image: str) -> str: ...


@dataclass
class EnvCache:
    """Installs requirement sets once and hands out read-only environments."""

    settings: Settings
    backend: VolumeBackend
    drive: JobDriver
    controller_id: str
    index: EnvIndex = field(init=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _locks_guard: threading.Lock = field(default_factory=threading.Lock, init=False)
    _volumes_ready: bool = field(default=False, init=False)
    _in_use: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.index = EnvIndex(self.settings.env_cache_index_path())

    # -- mounts -------------------------------------------------------------------
    def run_mounts(self) -> tuple[VolumeMount, ...]:
        """What every sandbox mounts: the shared cache, read-only."""
        return (VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=True),)

    def prepare(self) -> None:
        """Create the shared volumes (once per process; cheap when they exist)."""
        if self._volumes_ready:
            return
        for name in (CACHE_VOLUME, UV_CACHE_VOLUME):
            self.backend.ensure_volume(name, {LABEL_CACHE: "true"})
        self._volumes_ready = True

    # -- lookup and install ---------------------------------------------------------
    def key_for(self, requirements: list[str], image: str, run_id: str) -> str:
        image_id = self.backend.image_id(image)
        info = self.index.image_info(image_id)
        if info is None:
            outcome = self.drive(
                {"mode": "run", "code": PROBE_CODE}, mounts=(), needs_network=False, run_id=run_id
            )
            try:
                probed = json.loads(outcome.stdout.strip().splitlines()[-1])
                info = (f"{probed['python']}-{probed['tag']}", str(probed["platform"]))
            except (ValueError, IndexError, KeyError, TypeError) as exc:
                raise ExecutorError(
                    f"cannot probe the python of {image}: {outcome.error or exc}", run_id=run_id,
                    step="install",
                ) from exc  # fmt: skip
            self.index.set_image_info(image_id, *info)
        flavour = json.dumps(
            [self.settings.installer, self.settings.pip_index_url, self.settings.allow_sdists]
        )
        return cache_key(requirements, image_id, info[0], info[1], flavour)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    @contextmanager
    def using(self, key: str) -> Iterator[None]:
        """Mark ``key`` in use by a run, so pruning leaves it alone meanwhile."""
        with self._locks_guard:
            self._in_use[key] = self._in_use.get(key, 0) + 1
        try:
            yield
        finally:
            with self._locks_guard:
                self._in_use[key] -= 1
                if not self._in_use[key]:
                    del self._in_use[key]

    def get_or_install(
        self, requirements: list[str], image: str, run_id: str
    ) -> tuple[CachedEnv, bool]:
        """The environment for ``requirements``, installing it if needed.

        Raises:
            InstallFailed: the set does not install (the report says why).
            ExecutorError: Docker failed.
        """
        self.prepare()
        key = self.key_for(requirements, image, run_id)
        with self._key_lock(key):
            env = self.index.get(key)
            if env is not None:
                return env, True
            env = self._install(key, requirements, run_id)
            self.index.put(env)
        with self.using(key):  # the new environment is not evicted by its own install
            try:
                self.prune_to_bounds()
            except ExecutorError as exc:
                logger.bind(run_id=run_id).warning("cache eviction failed: {}", exc)
        return env, False

    def _install(self, key: str, requirements: list[str], run_id: str) -> CachedEnv:
        log = logger.bind(run_id=run_id)
        stage = f"ai-data-agent-stage-{uuid.uuid4().hex[:12]}"
        lifetime = self.settings.install_timeout_s + 600
        self.backend.ensure_volume(
            stage,
            {LABEL_MANAGED: "true", LABEL_CONTROLLER: self.controller_id,
             LABEL_OWNER: owner_label(), LABEL_DEADLINE: str(int(time.time() + lifetime))},
        )  # fmt: skip
        started = time.monotonic()
        try:
            outcome = self.drive(
                {
                    "mode": "install",
                    "code": "",
                    "requirements": requirements,
                    "install": {
                        "installer": self.settings.installer,
                        "target": f"{STAGE_MOUNT}/env",
                        "uv_cache": UV_CACHE_MOUNT if self.settings.uv_shared_cache else None,
                        "compile": True,
                        "only_binary": not self.settings.allow_sdists,
                    },
                },
                mounts=(
                    VolumeMount(stage, STAGE_MOUNT, read_only=False),
                    VolumeMount(UV_CACHE_VOLUME, UV_CACHE_MOUNT, read_only=False),
                ),
                needs_network=True,
                run_id=run_id,
                uv=self.settings.installer == "uv",
            )
            frame = outcome.frame or {}
            install = _as_dict(frame.get("install"))
            verify = _as_dict(frame.get("verify"))
            if outcome.error or frame.get("error") or not install.get("ok") or not verify.get("ok"):
                reason = outcome.error or frame.get("error") or (
                    "pip install failed" if not install.get("ok") else
                    f"installed but not found: {', '.join(map(str, verify.get('missing') or []))}"
                )  # fmt: skip
                raise InstallFailed(install, str(reason))
            published = self.drive(
                {"mode": "publish",
                 "publish": {"src": f"{STAGE_MOUNT}/env", "envs": ENVS_MOUNT, "key": key}},
                mounts=(
                    VolumeMount(stage, STAGE_MOUNT, read_only=True),
                    VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),
                ),
                needs_network=False,
                run_id=run_id,
            )  # fmt: skip
            if published.error or not (published.frame or {}).get("exists"):
                raise ExecutorError(
                    f"cannot publish the environment: {published.error or published.frame}",
                    run_id=run_id, step="install",
                )  # fmt: skip
            install_s = time.monotonic() - started
            log.info("environment {} installed in {:.2f}s", key[:12], install_s)
            now = time.time()
            return CachedEnv(
                key=key,
                requirements=list(requirements),
                packages=[
                    PackageInfo(name=str(p["name"]), version=str(p["version"]))
                    for p in verify.get("packages") or []
                    if isinstance(p, dict) and "name" in p and "version" in p
                ],
                installer=str(install.get("installer", "pip")),
                fallback_triggered=bool(install.get("fallback_triggered")),
                size_bytes=int((published.frame or {}).get("size") or 0),
                created_at=now,
                last_used_at=now,
                install_s=install_s,
                log_tail=str(install.get("log_tail", "")),
            )
        finally:
            try:
                self.backend.remove_volume(stage)
            except ExecutorError as exc:
                log.warning("staging volume {} stays for the sweep: {}", stage, exc)

    def forget(self, key: str) -> None:
        """Drop ``key`` from the index (its files are gone); the next request reinstalls it.

        The volume may have been removed under us too: check it again before use.
        """
        self.index.delete([key])
        self._volumes_ready = False

    # -- management -----------------------------------------------------------------
    def prune(
        self,
        *,
        max_bytes: int | None = None,
        max_age_s: float | None = None,
        keys: list[str] | None = None,
    ) -> list[str]:
        """Evict least recently used environments beyond the bounds (and any ``keys``)."""
        envs = self.index.all()  # most recently used first
        doomed = set(keys or [])
        now = time.time()
        total = 0
        for env in envs:
            total += env.size_bytes
            too_old = max_age_s is not None and now - env.last_used_at > max_age_s
            too_big = max_bytes is not None and total > max_bytes
            if too_old or too_big:
                doomed.add(env.key)
        with self._locks_guard:
            doomed -= set(self._in_use)
        if not doomed:
            return []
        self.prepare()
        outcome = self.drive(
            {"mode": "prune", "prune": {"envs": ENVS_MOUNT, "keys": sorted(doomed)}},
            mounts=(VolumeMount(CACHE_VOLUME, ENVS_MOUNT, read_only=False),),
            needs_network=False,
            run_id=f"prune-{uuid.uuid4().hex[:8]}",
        )
        if outcome.error:
            raise ExecutorError(
                f"cannot prune the environment cache: {outcome.error}", step="prune"
            )
        self.index.delete(sorted(doomed))
        return sorted(doomed)

    def prune_to_bounds(self) -> list[str]:
        return self.prune(
            max_bytes=self.settings.env_cache_max_bytes, max_age_s=self.settings.env_cache_max_age_s
        )
