"""Hello world through llm-sandbox, run by ITS venv's python (stdlib + llm_sandbox only).

    /tmp/peer-venv/bin/python bench/peer_llm_sandbox.py IMAGE N MODE

MODE ``lean``: ``skip_environment_setup=True`` and no network, llm-sandbox's
fastest sane configuration offline (its default setup creates a venv and runs
``pip install --upgrade pip`` in every session, which needs the index). MODE
``default``: its defaults, only the image given (it would pull its own image
from a registry otherwise). Both label their containers ``ai-data-agent-bench=peer``. Each session is open, run, close, as its README
shows. Prints one JSON object: the wall seconds of each session, or an error.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    image, count, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    try:
        from llm_sandbox import SandboxSession  # type: ignore[import-not-found]
    except ImportError as exc:
        print(json.dumps({"error": f"llm_sandbox not importable: {exc}"}))
        return 0
    # The label lets the benchmark remove whatever a failed session leaves behind.
    runtime: dict[str, object] = {"labels": {"ai-data-agent-bench": "peer"}}
    options: dict[str, object] = {"lang": "python", "image": image, "keep_template": True}
    if mode == "lean":
        runtime["network_mode"] = "none"
        options["skip_environment_setup"] = True
    options["runtime_configs"] = runtime
    seconds = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            with SandboxSession(**options) as session:
                out = session.run("print('hello world')")
            seconds.append(time.perf_counter() - started)
            if "hello" not in (out.stdout or ""):
                print(
                    json.dumps({"error": f"unexpected output {out.stdout!r}", "seconds": seconds})
                )
                return 0
    except Exception as exc:  # report whatever the peer raised, as data
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:500], "seconds": seconds}))
        return 0
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
