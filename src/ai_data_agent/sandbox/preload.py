"""The code's interpreter, started before the code arrives: imports first, then one role.

The runner starts it (`codeproc.CodeProcess`) as ``python3 -c <bootstrap>``
with the code's env and ``work/`` as its cwd; the bootstrap reads this
module's bundle from stdin, which then becomes /dev/null. Two pipes named in
``AI_DATA_AGENT_PRELOAD`` connect it to the runner: operations in
(length-prefixed `marshal` data, from the runner alone), reports out (JSON
lines, written by hand: the runner parses what this process writes, and never
with `marshal`, because an imported package may write there too). Nothing
here imports ``json``, which costs a fresh interpreter about 15 ms of CPU
(``re``, ``enum``): the code pays for it only if it imports it. It imports the
modules it was given (a pre-imported warm sandbox: ``pandas``, ``matplotlib.pyplot``;
none for a plain one), reports what it imported and the env it sees::

    {"k": "warm", "imported": ["pandas"], "error": null, "observed": {...}}

and waits for one operation:

* ``run``: become ``python main.py``: the env's last variables (the egress
  proxy's, an environment put on ``PYTHONPATH``), ``sys.argv``, ``sys.path[0]``
  and a fresh ``__main__``, then the code, its uncaught exception printed and
  its exit status as the interpreter gives them; with ``report``, the files of
  the modules it imported from the cached environments are written there at
  exit (the controller compiles those first);
* ``kernel``: become the session kernel (`kernel.main`) on the same pipes.

The runner starts it before it has a frame token, or after, in a child that
execs at once (`spawn`): the token is never in this process. Its own modules
are forgotten before the code runs (the code may import a real package of
that name).
Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import io
import marshal
import os
import sys

from ai_data_agent.sandbox.lastvalue import run_source, write_value

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import Any

CONFIG_VARIABLE = "AI_DATA_AGENT_PRELOAD"
KERNEL_VARIABLE = "AI_DATA_AGENT_KERNEL"  # as `kernel.CONFIG_VARIABLE`
MAX_REPORTED_MODULES = 5000
MAX_OP_BYTES = 16 * 1024 * 1024


def take_config() -> tuple[int, int, list[str]]:
    """The runner's two pipes (never inherited by the code's children) and the modules to
    import; stdin becomes /dev/null."""
    ops_fd, reports_fd, *modules = os.environ.pop(CONFIG_VARIABLE).split()
    ops, reports = int(ops_fd), int(reports_fd)
    for fd in (ops, reports):
        os.set_inheritable(fd, False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    return ops, reports, modules


def preimport(modules: list[str]) -> tuple[list[str], str | None]:
    """Import ``modules`` in order; stop at the first that fails (the runner then starts
    a clean interpreter for the code)."""
    imported: list[str] = []
    for name in modules:
        try:
            __import__(name)
        except BaseException as exc:  # anything: this interpreter is then not used
            return imported, f"{name}: {type(exc).__name__}: {exc}"[:2000]
        imported.append(name)
    return imported, None


def send(fd: int, message: dict[str, Any]) -> None:
    data = as_json(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def as_json(value: Any) -> str:
    """``value`` (None, bools, ints, strings, lists and dicts of them) as ASCII JSON."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + "".join(_escaped(c) for c in value) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(as_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(as_json(str(k)) + ": " + as_json(v) for k, v in value.items()) + "}"
    raise TypeError(f"cannot report a {type(value).__name__}")


def _escaped(char: str) -> str:
    if char == '"' or char == "\\":
        return "\\" + char
    if " " <= char <= "~":
        return char
    code = ord(char)
    if code > 0xFFFF:  # a surrogate pair, as JSON writes characters beyond the BMP
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def read_op(fd: int) -> dict[str, Any]:
    """The runner's operation (length-prefixed `marshal`, see `codeproc.CodeProcess.send`).

    Raises:
        EOFError: the runner closed the pipe (the interpreter goes unused).
        ValueError: not an operation.
    """
    with open(fd, "rb", closefd=False) as incoming:
        header = incoming.readline(32)
        if not header:
            raise EOFError("no operation")
        size = int(header)
        if not 0 < size <= MAX_OP_BYTES:
            raise ValueError(f"bad operation size {size}")
        data = incoming.read(size)
    if len(data) != size:
        raise EOFError("operation truncated")
    op = marshal.loads(data)  # noqa: S302  # written by the runner alone
    if not isinstance(op, dict):
        raise ValueError("not an operation")
    return op


def forget_ourselves() -> None:
    """Drop the sandbox's modules and their loader: the code sees a plain interpreter."""
    for name in [n for n in sys.modules if n == "ai_data_agent" or n.startswith("ai_data_agent.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "SourceLoader"]


def apply_env(changes: dict[str, Any]) -> None:
    """Set (or, for None, unset) variables; entries added to ``PYTHONPATH`` join ``sys.path``
    where the interpreter would have put them at start."""
    before = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(value)
    after = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if after != before:
        rest = [p for p in sys.path[1:] if p not in before]
        sys.path[1:] = after + rest


def write_imports(path: str, prefixes: list[str]) -> None:
    """At exit: the files of the imported modules under ``prefixes``, one a line."""
    found = []
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if isinstance(name, str) and name.endswith(".py") and name.startswith(tuple(prefixes)):
            found.append(name)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(found[:MAX_REPORTED_MODULES]))
    except OSError:
        pass  # a hint only


def invalidate_caches() -> None:
    """`importlib.invalidate_caches`, without importing `importlib` into the code's
    interpreter (``python main.py`` has not): the input files arrived after its start."""
    for finder in sys.meta_path:
        invalidate = getattr(finder, "invalidate_caches", None)
        if invalidate is not None:
            invalidate()


def run_main(op: dict[str, Any]) -> None:
    """Run ``op["main"]`` as ``python main.py`` would (see the module docstring)."""
    import atexit
    import builtins

    path = str(op["main"])
    apply_env(op.get("env") or {})
    report = op.get("report")
    if report:
        atexit.register(write_imports, str(report), [p + os.sep for p in op.get("prefixes") or []])
    sys.argv[:] = [os.path.basename(path)]
    sys.path[0] = os.path.dirname(path)
    invalidate_caches()
    namespace = sys.modules["__main__"].__dict__
    namespace.clear()
    namespace.update(
        __name__="__main__",
        __doc__=None,
        __package__=None,
        __spec__=None,
        __loader__=sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path),
        __file__=path,
        __cached__=None,
        __builtins__=builtins,
    )
    value = None
    try:
        with open(path, "rb") as fh:
            source = fh.read()
        value = run_source(source, path, namespace)
    except SystemExit:
        raise
    except BaseException as exc:
        uncaught(exc, path)
    if value is not None and op.get("value"):
        write_value(value, str(op.get("display")), str(op["value"]))


def uncaught(exc: BaseException, path: str) -> None:
    """As the interpreter ends on an uncaught exception: the traceback from the code's
    first frame (``path``'s: none of ours), status 1, or death by SIGINT for a
    KeyboardInterrupt."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != path:
        tb = tb.tb_next
    sys.excepthook(type(exc), exc.with_traceback(tb), tb)
    if not isinstance(exc, KeyboardInterrupt):
        raise SystemExit(1)
    import atexit
    import signal

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def become_kernel(op: dict[str, Any], ops: int, reports: int) -> int:
    """The session kernel, from the modules the operation carries, on the same pipes, with
    the session's environment."""
    apply_env(op.get("env") or {})
    package = sys.modules["ai_data_agent.sandbox"]  # the bootstrap's loader reads these
    package.SOURCES.update({str(k): str(v) for k, v in (op.get("sources") or {}).items()})
    package.CODE.update({str(k): v for k, v in (op.get("code") or {}).items() if type(v) is bytes})
    import json  # the kernel's protocol is JSON: it imports it anyway

    config = dict(op.get("config") or {}, **{"in": ops, "out": reports})
    os.environ[KERNEL_VARIABLE] = json.dumps(config)
    from ai_data_agent.sandbox import kernel

    return kernel.main()


def main() -> int:
    ops, reports, modules = take_config()
    imported, error = preimport(modules)
    observed = {
        "PYTHONPATH": os.environ.get("PYTHONPATH"),
        "HOME": os.environ.get("HOME"),
        "executable": sys.executable,
    }
    send(reports, {"k": "warm", "imported": imported, "error": error, "observed": observed})
    try:
        op = read_op(ops)
    except (EOFError, ValueError):
        return 0  # the runner let this interpreter go unused
    if op.get("op") == "kernel":
        return become_kernel(op, ops, reports)
    os.close(ops)
    os.close(reports)
    forget_ourselves()
    if not imported:
        run_main(op)
        return 0
    try:
        run_main(op)
        status = 0
    except SystemExit as exc:
        status = exit_status(exc)
    exit_fast(status)
    return status


def exit_status(exc: SystemExit) -> int:
    """The status the interpreter gives for ``exc`` (a message goes to stderr, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 1


def exit_fast(status: int) -> None:
    """End as the interpreter does (non-daemon threads joined, ``atexit`` handlers run, the
    code's globals dropped so its open files are flushed and closed, the streams flushed),
    without tearing down every module one by one: with pandas imported that teardown
    alone costs tenths of a second, more than the code of a typical run."""
    import atexit
    import gc
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # what interpreter exit calls first
    atexit._run_exitfuncs()
    sys.modules["__main__"].__dict__.clear()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = status or 120  # as the interpreter reports a failed flush at exit
    os._exit(status)
