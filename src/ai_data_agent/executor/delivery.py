"""How the sandbox programs reach a container: a small bootstrap on the command line, the rest on stdin.

    sandbox = launch(backend, spec, run_id)   # started; the runner is loaded and waits for a job

The command line carries only `sandbox.bootstrap` (``python3 -I -S -c ...``),
the container's pid 1, which forks the runner off and keeps none of its
channel; the runner and its modules follow as one length-prefixed `marshal` bundle
(`sandbox.bootstrap.bundle_of`) over the attach socket, so nothing is written
into the image (its root is read-only) and the engine does not pass tens of
kilobytes of command line per start. A pooled sandbox gets its bundle when it
starts, so its runner is loaded and waiting by the time a run takes it.
"""

from __future__ import annotations

import functools

from ai_data_agent.errors import ExecutorError
from ai_data_agent.executor.backend import Backend, Sandbox
from ai_data_agent.executor.spec import ContainerSpec
from ai_data_agent.sandbox.bootstrap import bundle_of

__all__ = ["SANDBOX_MODULES", "bundle", "launch"]

# Every module the runner may import or hand on: figures, lastvalue and verify run as
# programs, and the bootstrap starts the session kernel too. (describe and parquet travel
# as a describe run's input files instead; they are here so that every module is checked
# alike.)
SANDBOX_MODULES = (
    "bootstrap",
    "capture",
    "channel",
    "checkpoint",
    "codeproc",
    "describe",
    "display",
    "egress_relay",
    "environment",
    "envstore",
    "execute",
    "figures",
    "files",
    "install",
    "kernel",
    "kernelproc",
    "lastvalue",
    "outputs",
    "parquet",
    "preload",
    "runner",
    "session",
    "snapshot",
    "spawn",
    "verify",
    "wirejson",
)


@functools.cache
def bundle(main: str = "runner") -> bytes:
    """The sandbox modules as the bootstrap reads them, with ``main`` to run."""
    return bundle_of(main, SANDBOX_MODULES)


def launch(backend: Backend, spec: ContainerSpec, run_id: str) -> Sandbox:
    """Start a sandbox and load its runner; on failure nothing is left behind.

    Raises:
        ExecutorError: the container could not be started or written to.
    """
    sandbox = backend.start(spec, run_id)
    try:
        sandbox.send(bundle())
    except BaseException as exc:
        try:
            sandbox.remove()
        except ExecutorError:
            pass  # the sweep finds it by label; the first error matters more
        raise exc
    return sandbox
