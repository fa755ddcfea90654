"""What the run's interpreter sees: run as ``python -c <this> NAMES_JSON DIR`` in the run's env.

Prints one JSON object: for each wanted name the distribution that interpreter
finds (or null), every distribution installed in DIR, and the PYTHONPATH,
HOME and executable it saw. Standard library only, Python >= 3.9.
"""

import importlib.metadata as md
import json
import os
import re
import sys


def norm(name: str) -> str:
    """PEP 503 normalisation, as the index and the metadata compare names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def main() -> None:
    wanted = json.loads(sys.argv[1])
    where = sys.argv[2]
    found: dict[str, dict[str, str]] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(norm(name), {"name": name, "version": dist.version})
    installed = [
        {"name": dist.metadata["Name"], "version": dist.version}
        for dist in md.distributions(path=[where])
        if dist.metadata["Name"]
    ]
    report = {
        "found": {name: found.get(norm(name)) for name in wanted},
        "packages": sorted(installed, key=lambda p: norm(p["name"])),
        "observed": {
            "PYTHONPATH": os.environ.get("PYTHONPATH"),
            "HOME": os.environ.get("HOME"),
            "executable": sys.executable,
        },
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
