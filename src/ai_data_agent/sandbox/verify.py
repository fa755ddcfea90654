"""What the run's interpreter sees: run as ``python -c <this> NAMES_JSON DIR`` in the run's env.

Prints one JSON object: for each wanted name the distribution that interpreter
finds (or null), every distribution installed in DIR, and the PYTHONPATH,
HOME and executable it saw. The install sandbox calls `inspect` in its own
isolated interpreter instead (looking in DIR only), so that nothing the
install brought is imported while the shared download cache is writable.
Standard library only, Python >= 3.9.
"""

import importlib.metadata as md
import json
import os
import re
import sys
from typing import Any


def norm(name: str) -> str:
    """PEP 503 normalisation, as the index and the metadata compare names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def inspect(wanted: "list[str]", where: str, search: "list[str] | None" = None) -> "dict[str, Any]":
    """Each wanted name's distribution on ``search`` (default: this interpreter's path),
    and every distribution installed in ``where``."""
    found: dict[str, dict[str, str]] = {}
    for dist in md.distributions() if search is None else md.distributions(path=search):
        name = dist.metadata["Name"]
        if name:
            found.setdefault(norm(name), {"name": name, "version": dist.version})
    installed = [
        {"name": dist.metadata["Name"], "version": dist.version}
        for dist in md.distributions(path=[where])
        if dist.metadata["Name"]
    ]
    return {
        "found": {name: found.get(norm(name)) for name in wanted},
        "packages": sorted(installed, key=lambda p: norm(p["name"])),
    }


def main() -> None:
    report = inspect(json.loads(sys.argv[1]), sys.argv[2])
    report["observed"] = {
        "PYTHONPATH": os.environ.get("PYTHONPATH"),
        "HOME": os.environ.get("HOME"),
        "executable": sys.executable,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
