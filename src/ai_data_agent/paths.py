"""The one rule for file names that cross the sandbox boundary (inputs and artifacts).

    check_relative_path("data/sales.csv")   # -> "data/sales.csv"
    check_relative_path("../etc/passwd")    # ValueError
    check_relative_path("data//sales.csv")  # ValueError: not normal
    normalise_relative_path("./data//sales.csv")  # -> "data/sales.csv"

A path is relative, POSIX, already normal (no ``.``, ``..`` or empty parts, so
no trailing ``/`` either), without NUL or control characters, and short. The
API and the models apply `check_relative_path` as it is: a name is taken or
refused, never silently changed. `normalise_relative_path` is for names a
person typed for a local file (the CLI's ``--file data/./x.csv``). Nothing is
resolved against a file system here: the rule is purely textual, so it holds
whoever wrote the name.
"""

from __future__ import annotations

__all__ = [
    "MAX_PATH_LENGTH",
    "MAX_PATH_PART_LENGTH",
    "check_relative_path",
    "has_control_characters",
    "normalise_relative_path",
]

MAX_PATH_LENGTH = 1024
MAX_PATH_PART_LENGTH = 255


def has_control_characters(text: str) -> bool:
    """NUL, other C0 controls or DEL: never part of a name or a requirement."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise ValueError."""
    if not path:
        raise ValueError("empty path")
    if len(path) > MAX_PATH_LENGTH:
        raise ValueError(f"path longer than {MAX_PATH_LENGTH} characters")
    if has_control_characters(path):
        raise ValueError(f"path {path[:60]!r} contains NUL or control characters")
    if "\\" in path:
        raise ValueError(f"path {path[:60]!r} contains a backslash")
    if path.startswith("/"):
        raise ValueError(f"path {path[:60]!r} is absolute")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"path {path[:60]!r} is not normalised (empty, '.' or '..' part)")
        if len(part) > MAX_PATH_PART_LENGTH:
            raise ValueError(f"path {path[:60]!r} has a part longer than {MAX_PATH_PART_LENGTH}")
    return path


def normalise_relative_path(path: str) -> str:
    """Drop ``.`` and empty parts of a relative path, then apply `check_relative_path`.

    ``..`` is never resolved (it is rejected), so normalising cannot climb out.
    """
    if path.startswith("/"):
        raise ValueError(f"path {path[:60]!r} is absolute")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    return check_relative_path("/".join(parts))
