"""The container's command line: load the sandbox programs sent on stdin, then run one.

The controller starts ``python3 -I -S -c <this file>`` and writes one message to
stdin: a decimal byte length, a newline, and that many bytes of `marshal` data
(format 4, which every Python >= 3.4 reads; plain dicts, strings and bytes only)
``{"sources": {module name: source}, "code": {module name: bytes}, "magic":
bytes, "main": module name}`` (`bundle_of` makes one, `read_bundle` reads it).
``code`` is each module compiled by the controller's Python, whose bytecode
version is ``magic``: an interpreter of that version runs it as it is (the
compile of the runner's modules is about 10 ms of CPU per sandbox), any other
compiles the sources. Marshal, not JSON: ``json`` imports ``re`` and
``enum``, about 15 ms of CPU per interpreter in a fresh container, and the code's
interpreter starts with this loader too. A bundle only ever comes from the
controller or the runner, never from the code. The modules are served from memory under
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

import marshal
import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

# The import system's own classes, which every interpreter has loaded at its start:
# `importlib` and `types` cost milliseconds of CPU in each interpreter of a sandbox.
_bootstrap = sys.modules["_frozen_importlib"]
_bootstrap_external = sys.modules["_frozen_importlib_external"]
PACKAGE = "ai_data_agent.sandbox"
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MARSHAL_FORMAT = 4
# The bytecode's version: compiled code in a bundle is run only by an interpreter of it.
MAGIC = _bootstrap_external.MAGIC_NUMBER


class SourceLoader:
    """Finds and executes modules of `PACKAGE` from the sources in memory (from their
    compiled code when the bundle carries code this interpreter can run)."""

    def __init__(self, sources: "dict[str, str]", code: "dict[str, bytes]") -> None:
        self.sources = sources
        self.code = code

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> "ModuleSpec | None":
        if name not in self.sources:
            return None
        return _bootstrap.ModuleSpec(name, self)  # type: ignore[no-any-return]

    def create_module(self, spec: "ModuleSpec") -> None:
        return None

    def exec_module(self, module: "ModuleType") -> None:
        filename = module.__name__.replace(".", "/") + ".py"
        module.__file__ = filename
        compiled = self.code.get(module.__name__)
        if compiled is not None:
            exec(marshal.loads(compiled), module.__dict__)  # noqa: S102, S302  # our own code
        else:
            exec(compile(self.sources[module.__name__], filename, "exec"), module.__dict__)  # noqa: S102


def source_of(module: str) -> str:
    """The source of a sandbox module: from the bundle in a container, else from its file."""
    sources = getattr(sys.modules.get(PACKAGE), "SOURCES", None)
    if isinstance(sources, dict) and f"{PACKAGE}.{module}" in sources:
        return str(sources[f"{PACKAGE}.{module}"])
    with open(os.path.join(os.path.dirname(__file__), module + ".py"), encoding="utf-8") as fh:
        return fh.read()


def code_of(module: str) -> "bytes | None":
    """A sandbox module compiled, as `marshal` bytes: compiled here on the host, from the
    bundle in a container (None when the bundle's code is not for this interpreter)."""
    name = f"{PACKAGE}.{module}"
    package = sys.modules.get(PACKAGE)
    if isinstance(getattr(package, "SOURCES", None), dict):  # in a container
        found = getattr(package, "CODE", {}).get(name)
        return found if isinstance(found, bytes) else None
    filename = name.replace(".", "/") + ".py"
    return marshal.dumps(compile(source_of(module), filename, "exec"))


def bundle_of(main: str, modules: "tuple[str, ...]") -> bytes:
    """The message `read_bundle` reads: the sources of ``modules``, their code compiled
    (used where the interpreter's bytecode ``magic`` is the compiler's), and ``main``."""
    names = [f"{PACKAGE}.{m}" for m in modules]
    sources = {name: source_of(m) for name, m in zip(names, modules)}
    code = {name: c for name, m in zip(names, modules) if (c := code_of(m)) is not None}
    message = {"sources": sources, "code": code, "magic": MAGIC, "main": f"{PACKAGE}.{main}"}
    data = marshal.dumps(message, MARSHAL_FORMAT)
    return str(len(data)).encode() + b"\n" + data


def read_bundle(stdin: "object") -> "dict[str, object]":
    header = stdin.readline(32)  # type: ignore[attr-defined]
    size = int(header)
    if not 0 < size <= MAX_BUNDLE_BYTES:
        raise ValueError(f"bad bundle size {size}")
    data = stdin.read(size)  # type: ignore[attr-defined]
    if len(data) != size:
        raise EOFError("bundle truncated")
    bundle = marshal.loads(data)  # noqa: S302  # from the controller or the runner alone
    if not isinstance(bundle, dict):
        raise ValueError("malformed bundle")
    return bundle


def install(bundle: "dict[str, object]") -> None:
    """Register the package and a finder for the bundle's modules.

    Raises:
        ValueError: not a bundle.
    """
    sources, code = bundle.get("sources"), bundle.get("code") or {}
    if not isinstance(sources, dict) or not isinstance(code, dict):
        raise ValueError("malformed bundle")
    if bundle.get("magic") != MAGIC:  # compiled by another Python: the sources it is
        code = {}
    for name in ("ai_data_agent", PACKAGE):
        package = type(sys)(name)
        package.__path__ = []
        sys.modules[name] = package
    sys.modules[PACKAGE].SOURCES = sources  # type: ignore[attr-defined]
    sys.modules[PACKAGE].CODE = code  # type: ignore[attr-defined]
    sys.meta_path.insert(0, SourceLoader(sources, code))


def reap_until(child: int) -> int:
    """Pid 1's life after the fork: hold nothing, reap every orphan, and end with ``child``."""
    # `_signal`, not `signal`: that one imports `enum`, milliseconds of CPU in every sandbox.
    import _signal  # type: ignore[import-not-found]

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    # Pid 1 gets no signal it has no handler for from its own namespace: user code
    # cannot stop it. (The controller's kill comes from outside, and always lands.)
    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)
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
    main, sources = bundle.get("main"), bundle.get("sources")
    if not isinstance(main, str) or not isinstance(sources, dict) or main not in sources:
        raise ValueError("malformed bundle")
    install(bundle)
    __import__(main)
    sys.exit(sys.modules[main].main())


if __name__ == "__main__":
    boot()
