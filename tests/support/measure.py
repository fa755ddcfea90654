"""Sandbox runners started on the host are measured by coverage when the test run is.

    argv, env = measured([python, "-I", "-S", "-c", bootstrap], env)

A sandbox's command is ``python3 -I -S -c <bootstrap>``: without ``site``,
coverage's start-up hook (a ``.pth`` file) never runs in it. When this process
is measured with ``patch = ["subprocess"]`` (pyproject.toml), coverage has put
its configuration in ``COVERAGE_PROCESS_CONFIG``; `measured` then puts a
prelude before the bootstrap that imports coverage from where this
interpreter has it, starts it with that configuration, and takes both the
directory and the variable away again before the runner starts: the runner
still sees only the standard library, and the code it runs is not measured.
The bootstrap itself, normally compiled as ``<string>``, is compiled from the
same text under its file's name and module name, so it is measured as well;
the modules the runner loads from its bundle are recorded under their bundle
names, which ``[tool.coverage.paths]`` maps back to ``src/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ai_data_agent import sandbox

__all__ = ["measured"]

CONFIG_VARIABLE = "COVERAGE_PROCESS_CONFIG"

PRELUDE = """\
import os as _os, sys as _sys
_sys.path.insert(0, {site!r})
try:
    import coverage as _coverage
    _coverage.process_startup()
finally:
    _sys.path.remove({site!r})
    _os.environ.pop({variable!r}, None)
del _os, _sys
"""
# The bootstrap, under the name it has in src/ (its `__main__` guard then stays
# false, so the prelude calls `boot` itself).
BOOTSTRAP = """\
_bootstrap = {{"__name__": "ai_data_agent.sandbox.bootstrap", "__file__": {path!r}}}
exec(compile({source!r}, {path!r}, "exec"), _bootstrap)
_bootstrap["boot"]()
"""


def measured(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """``argv`` and ``env`` of a sandbox command, measured when this process is."""
    config = os.environ.get(CONFIG_VARIABLE)
    if config is None:
        return argv, env
    import coverage

    *interpreter, flag, source = argv
    if flag != "-c":
        raise ValueError(f"not a sandbox command: {argv[:4]}")
    site = str(Path(coverage.__file__).resolve().parent.parent)
    prelude = PRELUDE.format(site=site, variable=CONFIG_VARIABLE)
    bootstrap = Path(sandbox.__file__).with_name("bootstrap.py")
    if source == bootstrap.read_text(encoding="utf-8"):
        source = BOOTSTRAP.format(source=source, path=str(bootstrap))
    return [*interpreter, "-c", prelude + source], {**env, CONFIG_VARIABLE: config}
