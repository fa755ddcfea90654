"""What the commands read from the user's side: code, requirements, input files, network.

    code = read_code("analysis.py")                               # or "-" for stdin
    requirements = read_requirements(Path("requirements.txt"), ["six"])
    files = input_files(["sales.csv:data/sales.csv", "./a//b.csv"])   # a/b.csv
    network = network_option(["files.example.com"])             # {"allow": [...]}

Anything unreadable or invalid stops the command with exit 2 and says which
argument (`ai_data_agent.cli.common.fail`).
"""

from __future__ import annotations

import sys
from pathlib import Path, PurePath
from typing import Annotated

import typer
from pydantic import ValidationError

from ai_data_agent.cli.common import fail
from ai_data_agent.cli.exits import EXIT_USAGE
from ai_data_agent.errors import RequestRejected
from ai_data_agent.models import InputFile, parse_requirements_text
from ai_data_agent.paths import normalise_relative_path

__all__ = ["AllowHosts", "input_files", "network_option", "read_code", "read_requirements"]

AllowHosts = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        metavar="HOST",
        help="A host the code may reach through the egress proxy: files.example.com, "
        "*.example.com, optionally :PORT (repeatable; on the server's egress allow-list).",
    ),
]


def read_code(file: str) -> str:
    """The code in ``file``, or on stdin for ``-``."""
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"cannot read {file}: {exc}", EXIT_USAGE) from exc


def read_requirements(requirements_file: Path | None, specs: list[str]) -> list[str]:
    """The requirements of ``-r FILE`` (if any), then those of ``-p``."""
    reqs: list[str] = []
    if requirements_file is not None:
        try:
            reqs += parse_requirements_text(requirements_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise fail(f"{requirements_file}: {exc}", EXIT_USAGE) from exc
    return reqs + specs


def _default_destination(local: str) -> str:
    """LOCAL itself when it is relative and stays below here (``./a//b.csv`` is
    ``a/b.csv``), else its name (``../x.csv`` and ``/tmp/x.csv`` are ``x.csv``)."""
    try:
        return normalise_relative_path(PurePath(local).as_posix())
    except ValueError:
        return PurePath(local).name


def input_files(specs: list[str]) -> list[InputFile]:
    """``LOCAL[:DEST]`` pairs; DEST defaults to `_default_destination` of LOCAL."""
    files = []
    for spec in specs:
        local, sep, dest = spec.partition(":")
        path = Path(local)
        if not sep:
            dest = _default_destination(local)
        try:
            files.append(InputFile.from_bytes(dest, path.read_bytes()))
        except OSError as exc:
            raise fail(f"--file {spec}: cannot read {local}: {exc.strerror}", EXIT_USAGE) from exc
        except ValidationError as exc:
            reason = RequestRejected.from_errors(exc.errors()).reason
            raise fail(f"--file {spec}: {reason}", EXIT_USAGE) from exc
    return files


def network_option(allow: list[str], *, unrestricted: bool = False) -> bool | dict[str, list[str]]:
    """A request's ``network``: only the ``--allow`` hosts, else ``--network``'s flag."""
    if allow and unrestricted:
        raise fail("--network and --allow exclude each other (--allow: only its hosts)", EXIT_USAGE)
    return {"allow": allow} if allow else unrestricted
