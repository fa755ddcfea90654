"""Which distributions an environment holds, read from their metadata files, in the runner.

    report = inspect(["pandas"], "/opt/ai-data-agent/envs/ab12", search=pythonpath)
    report["found"]["pandas"]   # {"name": "pandas", "version": "3.1.1"}, or None
    report["packages"]          # every distribution installed in the environment
    heavy_modules("/opt/ai-data-agent/envs/ab12", None)   # ["pandas"]: what a warm one imports

The runner asks in its own isolated interpreter (nothing installed is
imported, so nothing the install brought runs, even while an install sandbox
holds the shared download cache writable) and looks where the code's
interpreter looks: the entries of the code's ``PYTHONPATH``. It reads the
``*.dist-info``/``*.egg-info`` headers (``Name:``, ``Version:``) itself, as
``importlib.metadata`` would find them, without importing it (a run should
pay for nothing it does not use). Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import os

from ai_data_agent.sandbox.environment import ENV_MANIFEST

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

HEADER_BYTES = 64 * 1024


def norm(name: str) -> str:
    """PEP 503 normalisation, as the index and the metadata compare names."""
    out: list[str] = []
    for ch in name.lower():
        if ch in "-_.":
            if not out or out[-1] != "-":
                out.append("-")
        else:
            out.append(ch)
    return "".join(out)


def _headers(path: str) -> dict[str, str]:
    """The ``Name`` and ``Version`` of a metadata file (RFC 822 headers up to a blank line)."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(HEADER_BYTES).decode("utf-8", "replace")
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
    return found


def distributions(folder: str) -> list[dict[str, str]]:
    """``{"name", "version"}`` of each distribution installed directly in ``folder``."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for entry in names:
        path = os.path.join(folder, entry)
        if entry.endswith(".dist-info"):
            meta = _headers(os.path.join(path, "METADATA"))
        elif entry.endswith(".egg-info"):
            meta = _headers(os.path.join(path, "PKG-INFO") if os.path.isdir(path) else path)
        else:
            continue
        if meta.get("Name"):
            found.append({"name": meta["Name"], "version": meta.get("Version", "")})
    return found


def inspect(wanted: list[str], where: str, search: list[str]) -> dict[str, Any]:
    """Each wanted name's distribution on ``search`` (the first one, in path order), and
    every distribution installed in ``where``."""
    found: dict[str, dict[str, str]] = {}
    for folder in search:
        for dist in distributions(folder):
            found.setdefault(norm(dist["name"]), dist)
    installed = distributions(where)
    return {
        "found": {name: found.get(norm(name)) for name in wanted},
        "packages": sorted(installed, key=lambda p: norm(p["name"])),
    }


def requirement_name(line: str) -> str:
    """The project name a requirement line starts with (``pandas>=2; python_version>'3'``)."""
    end = len(line)
    for stop in " <>=!~;[(@":
        found = line.find(stop)
        if 0 <= found < end:
            end = found
    return line[:end].strip()


def top_level_modules(folder: str, project: str) -> list[str]:
    """The importable top-level names distribution ``project`` put in ``folder`` (from its
    ``RECORD``): the one named after the project when there is one (``pandas``, not
    ``pylab`` beside ``matplotlib``), else every public one (``sklearn``, ``dateutil``)."""
    wanted = norm(project)
    names: list[str] = []
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if (
            entry.endswith(".dist-info")
            and norm(entry[: -len(".dist-info")].rsplit("-", 1)[0]) == wanted
        ):
            names = _record_tops(os.path.join(folder, entry, "RECORD"))
            break
    own = wanted.replace("-", "_")
    return [own] if own in names else [n for n in names if not n.startswith("_")]


def _record_tops(record: str) -> list[str]:
    try:
        with open(record, encoding="utf-8", errors="replace") as fh:
            lines = fh.read(4 * 1024 * 1024).splitlines()
    except OSError:
        return []
    tops: dict[str, None] = {}
    for line in lines:
        path = line.split(",", 1)[0]
        head, sep, _ = path.partition("/")
        if sep and head.isidentifier() and path.endswith("/__init__.py") and path.count("/") == 1:
            tops[head] = None
        elif not sep and (head.endswith(".py") or head.endswith(".so")):
            stem = head.split(".", 1)[0]
            if stem.isidentifier():
                tops[stem] = None
    return sorted(tops)


def heavy_modules(folder: str, configured: list[str] | None) -> list[str]:
    """What a warm interpreter imports from environment ``folder`` (see `preload`):
    ``configured`` where the environment has their top package, else the top-level
    modules of the environment's own requirements (its manifest); ``matplotlib.pyplot``
    follows ``matplotlib`` (its figures come back under Agg)."""
    import json

    if configured is not None:
        present = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        return [m for m in configured if _provides(present, m.split(".", 1)[0])]
    try:
        with open(os.path.join(folder, ENV_MANIFEST), encoding="utf-8") as fh:
            lines = json.load(fh).get("requirements") or []
    except (OSError, ValueError, AttributeError):
        return []
    modules: list[str] = []
    for line in lines:
        for name in top_level_modules(folder, requirement_name(str(line))):
            modules += [name, "matplotlib.pyplot"] if name == "matplotlib" else [name]
    return list(dict.fromkeys(modules))


def _provides(present: set[str], top: str) -> bool:
    return (
        top in present
        or f"{top}.py" in present
        or any(p.startswith(f"{top}.") and p.endswith(".so") for p in present)
    )
