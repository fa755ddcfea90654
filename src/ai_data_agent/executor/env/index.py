"""The environment cache's index: which requirement sets are installed, and each image's python.

    index = EnvIndex(path)
    index.put(env); index.get(key); index.all(); index.delete([key])
    with index.install_lock(key): ...        # one install per key across processes

One SQLite file per Docker engine (under the user's cache directory unless
``AI_DATA_AGENT_ENV_CACHE_INDEX`` names one), shared by every controller of
that user on that engine: the CLI and a daemon see the same cache. It is a
cache of the truth, which is the shared volume: each published environment
carries a manifest, so an environment missing here is adopted, not installed
again. WAL mode and a file lock per key make it safe for concurrent processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ai_data_agent.errors import ConfigurationError
from ai_data_agent.executor.engine_index import EngineIndex
from ai_data_agent.executor.spec import ENVS_MOUNT
from ai_data_agent.models import PackageInfo
from ai_data_agent.settings import user_cache_dir

__all__ = [
    "CachedEnv",
    "EnvIndex",
    "ImageInfo",
    "cache_key",
    "default_index_path",
    "normal_requirement",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS envs (
    key TEXT PRIMARY KEY, requirements TEXT NOT NULL, packages TEXT NOT NULL,
    installer TEXT NOT NULL, fallback INTEGER NOT NULL, size INTEGER NOT NULL,
    created REAL NOT NULL, last_used REAL NOT NULL, install_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY, python TEXT NOT NULL, platform TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS compiled (key TEXT PRIMARY KEY, at REAL NOT NULL);
"""
# The bytecode state has a table of its own: controllers of older versions share the
# file and read `envs` by position.
SELECT_ENVS = "SELECT envs.*, compiled.key IS NOT NULL FROM envs LEFT JOIN compiled USING (key)"


@dataclass(frozen=True)
class ImageInfo:
    """What makes wheels differ between images: the python (with its cache tag) and platform."""

    python: str
    platform: str


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
    compiled: bool = False  # its bytecode is all there (the last compile finished)

    @property
    def path(self) -> str:
        """Where sandboxes see it."""
        return f"{ENVS_MOUNT}/{self.key}"

    def manifest(self) -> dict[str, Any]:
        """What the shared volume keeps next to the files (see `from_manifest`)."""
        return {
            "requirements": self.requirements,
            "packages": [p.model_dump() for p in self.packages],
            "installer": self.installer,
            "fallback_triggered": self.fallback_triggered,
            "created_at": self.created_at,
            "install_s": self.install_s,
        }

    @classmethod
    def from_manifest(cls, key: str, manifest: dict[str, Any]) -> CachedEnv:
        """An environment another controller published (the manifest is untrusted input).

        Raises:
            ValueError: the manifest does not describe an environment.
        """
        try:
            return cls(
                key=key,
                requirements=[str(r) for r in manifest["requirements"]],
                packages=[PackageInfo.model_validate(p) for p in manifest["packages"]],
                installer=str(manifest["installer"]),
                fallback_triggered=bool(manifest.get("fallback_triggered")),
                size_bytes=int(manifest.get("size") or 0),
                created_at=float(manifest["created_at"]),
                last_used_at=time.time(),
                install_s=float(manifest.get("install_s") or 0.0),
                compiled=manifest.get("compiled") is True,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an environment manifest: {exc}") from exc


def normal_requirement(line: str) -> str:
    """A requirement as the cache keys it: its name canonical (``Pandas>=2`` is ``pandas>=2``)."""
    req = Requirement(line)
    return str(req).replace(req.name, canonicalize_name(req.name), 1)


def cache_key(requirements: list[str], image_id: str, image: ImageInfo, flavour: str) -> str:
    """Stable key of a requirement set: normalised, sorted, with what makes wheels differ."""
    normal = sorted(normal_requirement(line) for line in requirements)
    blob = {
        "requirements": normal,
        "image": image_id,
        "python": image.python,
        "platform": image.platform,
        "flavour": flavour,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:32]


def default_index_path(engine_id: str) -> Path:
    """``<user cache dir>/ai-data-agent/engines/<engine id>/envcache.sqlite3``."""
    safe = "".join(ch for ch in engine_id if ch.isalnum() or ch in "-_") or "default"
    return user_cache_dir() / "engines" / safe[:64] / "envcache.sqlite3"


def _env(row: tuple[Any, ...]) -> CachedEnv:
    key, reqs, packages, installer, fallback, size, created, last_used, install_s, compiled = row
    return CachedEnv(
        key=key,
        requirements=json.loads(reqs),
        packages=[PackageInfo(**p) for p in json.loads(packages)],
        installer=installer,
        fallback_triggered=bool(fallback),
        size_bytes=size,
        created_at=created,
        last_used_at=last_used,
        install_s=install_s,
        compiled=bool(compiled),
    )


class EnvIndex(EngineIndex):
    """What is in the cache: SQLite, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        """Raises:
        ConfigurationError: the file cannot be created or written (a read-only home)."""
        try:
            super().__init__(path, SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot write the environment cache's index {path}: {exc}; point "
                "AI_DATA_AGENT_ENV_CACHE_INDEX (or XDG_CACHE_HOME) at a writable place"
            ) from exc

    def install_lock(self, key: str) -> AbstractContextManager[None]:
        """Held while ``key`` is looked up and installed: by one thread of one process at a time."""
        return self.key_lock(key)

    @contextmanager
    def compile_lock(self, key: str) -> Iterator[bool]:
        """Whether this caller compiles ``key`` now: False while another process does."""
        lock_dir = self.path.parent / "locks"
        lock_dir.mkdir(exist_ok=True)
        with (lock_dir / f"{key}.compile").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def get(self, key: str, *, touch: bool = True) -> CachedEnv | None:
        with self._db() as db:
            if touch:
                db.execute("UPDATE envs SET last_used = ? WHERE key = ?", (time.time(), key))
            row = db.execute(f"{SELECT_ENVS} WHERE key = ?", (key,)).fetchone()
        return _env(row) if row else None

    def mark_compiled(self, key: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO compiled VALUES (?, ?)", (key, time.time()))

    def put(self, env: CachedEnv) -> None:
        packages = json.dumps([p.model_dump() for p in env.packages])
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO envs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    env.key,
                    json.dumps(env.requirements),
                    packages,
                    env.installer,
                    int(env.fallback_triggered),
                    env.size_bytes,
                    env.created_at,
                    env.last_used_at,
                    env.install_s,
                ),
            )
            if env.compiled:
                db.execute("INSERT OR REPLACE INTO compiled VALUES (?, ?)", (env.key, time.time()))
            else:
                db.execute("DELETE FROM compiled WHERE key = ?", (env.key,))

    def all(self) -> list[CachedEnv]:
        with self._db() as db:
            rows = db.execute(f"{SELECT_ENVS} ORDER BY last_used DESC").fetchall()
        return [_env(r) for r in rows]

    def delete(self, keys: list[str]) -> None:
        with self._db() as db:
            db.executemany("DELETE FROM envs WHERE key = ?", [(k,) for k in keys])
            db.executemany("DELETE FROM compiled WHERE key = ?", [(k,) for k in keys])

    def image_info(self, image_id: str) -> ImageInfo | None:
        with self._db() as db:
            row = db.execute(
                "SELECT python, platform FROM images WHERE image_id = ?", (image_id,)
            ).fetchone()
        return ImageInfo(row[0], row[1]) if row else None

    def set_image_info(self, image_id: str, info: ImageInfo) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?)",
                (image_id, info.python, info.platform),
            )
