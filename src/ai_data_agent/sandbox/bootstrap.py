"""The container's command line: load the sandbox programs sent on stdin, then run one.

The controller starts ``python3 -I -S -c <this file>`` and writes one message to
stdin: a decimal byte length, a newline, and that many bytes of JSON
``{"sources": {module name: source}, "main": module name}`` (`bundle_of` makes
one, `read_bundle` reads it). The modules are served from memory under
``ai_data_agent.sandbox`` (nothing is written to the image, whose root is
read-only) and ``main``'s ``main()`` is called. The same loader starts the
session kernel, in its own interpreter.

As the container's first process (pid 1) it first forks: the child goes on
to load and run the runner, which alone holds the container's stdin and
stdout (the controller's channel) and makes itself undumpable before it reads
its job; this process points its own stdin, stdout and stderr at /dev/null
and only reaps orphans until the runner exits, then exits with its status.
So nothing user code can open reaches the channel: ``/proc/<runner>/fd`` is
closed to it, and ``/proc/1/fd/1`` is /dev/null.

Standard library only, Python >= 3.9, as everything in this package.
"""

import importlib
import json
import os
import signal
import sys
import types
from importlib.machinery import ModuleSpec

PACKAGE = "ai_data_agent.sandbox"
MAX_BUNDLE_BYTES = 4 * 1024 * 1024


class SourceLoader:
    """Finds and executes modules of `PACKAGE` from the sources in memory."""

    def __init__(self, sources: "dict[str, str]") -> None:
        self.sources = sources

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> "ModuleSpec | None":
        if name not in self.sources:
            return None
        return ModuleSpec(name, self)  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        filename = module.__name__.replace(".", "/") + ".py"
        module.__file__ = filename
        exec(compile(self.sources[module.__name__], filename, "exec"), module.__dict__)  # noqa: S102


def source_of(module: str) -> str:
    """The source of a sandbox module: from the bundle in a container, else from its file."""
    sources = getattr(sys.modules.get(PACKAGE), "SOURCES", None)
    if isinstance(sources, dict) and f"{PACKAGE}.{module}" in sources:
        return str(sources[f"{PACKAGE}.{module}"])
    with open(os.path.join(os.path.dirname(__file__), module + ".py"), encoding="utf-8") as fh:
        return fh.read()


def bundle_of(main: str, modules: "tuple[str, ...]") -> bytes:
    """The message `read_bundle` reads: the sources of ``modules``, and ``main`` to run."""
    sources = {f"{PACKAGE}.{m}": source_of(m) for m in modules}
    body = json.dumps({"sources": sources, "main": f"{PACKAGE}.{main}"}, ensure_ascii=True)
    data = body.encode()
    return str(len(data)).encode() + b"\n" + data


def read_bundle(stdin: "object") -> "dict[str, object]":
    header = stdin.readline(32)  # type: ignore[attr-defined]
    size = int(header)
    if not 0 < size <= MAX_BUNDLE_BYTES:
        raise ValueError(f"bad bundle size {size}")
    data = stdin.read(size)  # type: ignore[attr-defined]
    if len(data) != size:
        raise EOFError("bundle truncated")
    bundle: dict[str, object] = json.loads(data)
    return bundle


def install(sources: "dict[str, str]") -> None:
    """Register the package and a finder for its modules."""
    for name in ("ai_data_agent", PACKAGE):
        package = types.ModuleType(name)
        package.__path__ = []
        sys.modules[name] = package
    sys.modules[PACKAGE].SOURCES = sources  # type: ignore[attr-defined]
    sys.meta_path.insert(0, SourceLoader(sources))


def reap_until(child: int) -> int:
    """Pid 1's life after the fork: hold nothing, reap every orphan, and end with ``child``."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    # Pid 1 gets no signal it has no handler for from its own namespace: user code
    # cannot stop it. (The controller's kill comes from outside, and always lands.)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def boot() -> None:
    if os.getpid() == 1:
        child = os.fork()
        if child:
            os._exit(reap_until(child))
    bundle = read_bundle(sys.stdin.buffer)
    sources = bundle["sources"]
    main = bundle["main"]
    if not isinstance(sources, dict) or not isinstance(main, str) or main not in sources:
        raise ValueError("malformed bundle")
    install(sources)
    module = importlib.import_module(main)
    sys.exit(module.main())


if __name__ == "__main__":
    boot()
