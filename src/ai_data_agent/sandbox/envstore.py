"""The shared environment cache volume, from inside a sandbox that runs only our code.

    publish_env("/stage/env", "/opt/ai-data-agent/envs", key, manifest)
    compile_env("/opt/ai-data-agent/envs", key, workers=2)
    prune_envs("/opt/ai-data-agent/envs", [key])
    read_manifest("/opt/ai-data-agent/envs", key)
    cache_job(job)       # the runner's modes publish, compile, prune and probe

Environments appear and disappear by rename only, so no run ever sees half of
one. An environment is published before its bytecode is compiled; the compile
comes after, in the background, and each ``.pyc`` is written atomically (the
import system's own temp-file-and-rename), so a run importing meanwhile is
correct, only slower. Each holds a manifest (what was asked for and what got installed), so any
controller on the same engine can adopt an environment another one installed.
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from ai_data_agent.sandbox.environment import ENV_MANIFEST, remove_tree, tree_size

ENV_COMPILED = ".ai-data-agent-compiled"  # in an environment whose compile ran to its end

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

STALE_TEMP_S = 3600.0  # a half-published environment this old was abandoned
MAX_MANIFEST_BYTES = 1024 * 1024


def _valid_key(key: str) -> bool:
    return bool(key) and "/" not in key and not key.startswith(".") and key not in ("..",)


def publish_env(src: str, envs_dir: str, key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Copy a finished install into the shared cache under ``key``, atomically.

    The copy goes to a hidden name first and is renamed into place; if ``key``
    exists already with its manifest (another controller was first) the copy is
    dropped. A directory there without one is debris, never a published
    environment (a manifest is written before the rename): it goes first.
    """
    if not _valid_key(key):
        raise ValueError(f"bad key {key!r}")
    final = os.path.join(envs_dir, key)
    if os.path.isfile(os.path.join(final, ENV_MANIFEST)):
        return {"published": False, "size": tree_size(final)}
    if os.path.lexists(final):
        _discard(envs_dir, key)
    tmp = os.path.join(envs_dir, f".tmp-{key}-{os.urandom(6).hex()}")
    shutil.copytree(src, tmp, symlinks=True)
    with open(os.path.join(tmp, ENV_MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    try:
        os.rename(tmp, final)
    except OSError:
        remove_tree(tmp)
        return {"published": False, "size": tree_size(final)}
    return {"published": True, "size": tree_size(final)}


def compile_env(
    envs_dir: str, key: str, workers: int, first: list[str] | None = None, rest: bool = True
) -> dict[str, Any]:
    """Compile a published environment's bytecode, in ``workers`` processes: the files
    ``first`` (relative to it: what a run imported, in its order), then (unless not
    ``rest``: the walk is left to a later compile, ``complete`` False) the rest. Once
    the walk is over (``complete``) a marker says so (`read_manifest` reports it),
    even if some files did not compile (``compiled`` False): those never will, and a
    compile that was cut short leaves no marker, so the next one finishes it.

    It works inside the environment's directory (its cwd), never by its path: if
    the environment is pruned meanwhile, the compile follows it to the trash
    instead of creating ``<key>/.../__pycache__`` afresh under the old name.
    """
    import compileall

    if not _valid_key(key):
        raise ValueError(f"bad key {key!r}")
    path = os.path.join(envs_dir, key)
    try:
        os.chdir(path)
    except OSError:
        return {"compiled": False, "complete": False}
    early = [rel for rel in first or [] if _inside(rel) and os.path.isfile(rel)]
    if early:
        _compile_files(early, path, max(workers, 1))
    if not rest:
        return {"compiled": True, "complete": False, "first": len(early)}
    # ddir: the file names in the bytecode are those runs import from.
    ok = compileall.compile_dir(".", quiet=2, workers=max(workers, 1), ddir=path)
    with open(ENV_COMPILED, "w", encoding="utf-8") as fh:
        fh.write(str(time.time()))
    return {"compiled": bool(ok), "complete": True, "first": len(early)}


def _inside(rel: str) -> bool:
    """A path relative to the environment that stays inside it."""
    return (
        bool(rel) and not rel.startswith("/") and ".." not in rel.split("/") and "\x00" not in rel
    )


def _compile_one(rel: str, root: str) -> bool:
    import compileall

    return bool(
        compileall.compile_file(rel, ddir=os.path.join(root, os.path.dirname(rel)), quiet=2)
    )


def _compile_files(files: list[str], root: str, workers: int) -> None:
    """``files`` in their order, ``workers`` at a time (what compile_dir does, for a list)."""
    if workers <= 1 or len(files) < 2:
        for rel in files:
            _compile_one(rel, root)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_compile_one, files, [root] * len(files)))


def _discard(envs_dir: str, key: str) -> bool:
    """Rename ``key`` away (no run sees half of it), then remove it; False if absent."""
    trash = os.path.join(envs_dir, f".trash-{key}-{os.urandom(6).hex()}")
    try:
        os.rename(os.path.join(envs_dir, key), trash)
    except OSError:
        return False
    remove_tree(trash)
    return True


def read_manifest(envs_dir: str, key: str) -> dict[str, Any] | None:
    """The manifest of a published environment, or None when there is none."""
    if not _valid_key(key):
        return None
    path = os.path.join(envs_dir, key, ENV_MANIFEST)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.loads(fh.read(MAX_MANIFEST_BYTES))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data["size"] = tree_size(os.path.join(envs_dir, key))
    data["compiled"] = os.path.isfile(os.path.join(envs_dir, key, ENV_COMPILED))
    return data


def prune_envs(envs_dir: str, keys: list[str]) -> dict[str, Any]:
    """Remove cached environments: renamed away first, so no run sees half of one."""
    removed = []
    for key in keys:
        if not _valid_key(key):
            continue
        if _discard(envs_dir, key):
            removed.append(key)
    # Leftovers of interrupted copies and removals (old enough not to be in progress).
    for name in os.listdir(envs_dir):
        path = os.path.join(envs_dir, name)
        try:
            stale = time.time() - os.lstat(path).st_mtime > STALE_TEMP_S
        except OSError:
            continue
        if name.startswith((".tmp-", ".trash-")) and stale:
            remove_tree(path)
    return {"removed": removed}


def probe() -> dict[str, Any]:
    """The image's python, as the environment cache keys it."""
    import sys
    import sysconfig

    return {
        "python": "{}.{}.{}".format(*sys.version_info[:3]),
        "tag": sys.implementation.cache_tag,
        "platform": sysconfig.get_platform(),
    }


def cache_job(job: dict[str, Any]) -> dict[str, Any]:
    """Modes ``publish``, ``compile``, ``prune`` and ``probe``: no sandbox dir, no user code."""
    mode = job["mode"]
    spec = job.get(mode) or {}
    try:
        if mode == "publish":
            return publish_env(spec["src"], spec["envs"], spec["key"], spec["manifest"])
        if mode == "prune":
            return prune_envs(spec["envs"], list(spec["keys"]))
        if mode == "compile":
            first = [str(p) for p in spec.get("first") or []]
            rest = spec.get("rest", True) is not False
            return compile_env(spec["envs"], spec["key"], int(spec["workers"]), first, rest)
        return probe()
    except (OSError, KeyError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
