"""The kernel's side of checkpoints: its namespace written out by a forked child, and read back.

    reply = fork_snapshot(namespace, {"fifo": path, "report": path2, "serialiser": dir})
    report = restore(namespace, {"path": path, "serialiser": dir})   # in a fresh kernel

A checkpoint is taken by a child forked from the kernel between cells: the
child holds a copy-on-write picture of the namespace at that instant and
writes it to the runner's FIFO, while the kernel goes on serving cells. The
user's code that serialising runs (``__reduce__``, ``__getstate__``) runs in
that child: if it loops or crashes, the runner kills the child and the
session is untouched.

Each variable is its own pickle (cloudpickle: functions and classes defined
in cells by value, modules by reference), so one that cannot be written is
listed with its type and the reason, and the others are kept; a variable
that names an object written before it (``b = a``, a function's globals) is
written as a reference to it, and functions are bound again to the live
namespace, so they see later cells' variables. Large buffers (numpy, pandas)
go out of band, unchanged. The stream, record by record::

    AIDA-CHECKPOINT 1\\n {"python": ..., "serialiser": ...}\\n
    {"name": n, "type": t, "size": s, "buffers": [b1, ...]}\\n <s bytes> <b1 bytes> ...
    {"name": alias, "type": t, "alias": n}\\n
    {"end": true}\\n

cloudpickle is not in the image: the runner writes the controller's own
copy, read-only, under a private package name (``_ai_data_agent_cloudpickle``)
beside the sandbox dir, and it is imported from there only here, the one
exception to this package's standard-library-only rule. Python >= 3.9.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import sys

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from typing import IO, Any

SERIALISER = "_ai_data_agent_cloudpickle"
MAGIC = b"AIDA-CHECKPOINT 1\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_REASON_CHARS = 300
MAX_LISTED = 1000
MAX_MODULES = 50
PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named there only from Python 3.10
CHILD_OOM_SCORE = "1000"  # under memory pressure the child goes first, then the kernel
KERNEL_OOM_SCORE = "999"
# Files: cloudpickle would save a file open for reading as its text, a lie about what it is.
FILE_TYPES = ("FileIO", "BufferedReader", "BufferedWriter", "BufferedRandom", "TextIOWrapper")


def load_serialiser(where: str) -> Any:
    """The shipped cloudpickle, imported once from ``where`` (it stays in ``sys.modules``:
    pickles name its functions, and a restore needs them under the same name)."""
    module = sys.modules.get(SERIALISER)
    if module is not None:
        return module
    sys.path.insert(0, where)
    try:
        import importlib

        module = importlib.import_module(SERIALISER)
    finally:
        sys.path.remove(where)
    return module


def preload(config: dict[str, Any]) -> dict[str, Any]:
    """Import the serialiser, and the modules the checkpoint's values come from, ahead
    of a restore, while its bytes arrive (a failure is the restore's to report)."""
    failed = []
    for module in ["", *[str(m) for m in config.get("modules") or []][:MAX_MODULES]]:
        try:
            if module:
                import importlib

                importlib.import_module(module)
            else:
                load_serialiser(str(config["serialiser"]))
        except Exception as exc:  # the user's modules may raise anything on import
            failed.append(f"{module or SERIALISER}: {_reason(exc)}")
    return {"k": "serialiser", "failed": failed}


def _type_name(value: object) -> str:
    kind = type(value)
    return str(getattr(kind, "__qualname__", kind.__name__))[:200]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]


def candidates(namespace: dict[str, Any]) -> list[str]:
    """The names to save, data first, then classes, then functions (so that what a
    function or an instance refers to is written before it, and named, not copied)."""
    names = [n for n in namespace if not (n.startswith("__") and n.endswith("__"))]
    owner = getattr(namespace.get("display"), "__self__", None)
    if owner is not None and type(owner).__name__ == "Kernel":
        names.remove("display")  # the kernel's own; a new kernel brings its own

    def rank(name: str) -> int:
        value = namespace[name]
        if isinstance(value, type):
            return 2
        return 3 if callable(value) else 1

    return sorted(names, key=rank)


class _Writer:
    """Each variable pickled on its own, written only once whole (see the module docstring)."""

    def __init__(self, serialiser: Any, namespace: dict[str, Any], out: IO[bytes]) -> None:
        self.namespace = namespace
        self.out = out
        self.emitted: dict[int, str] = {}
        self.current: object = None
        self.kept: list[str] = []
        self.lost: list[dict[str, str]] = []
        writer = self

        class Pickler(serialiser.Pickler):  # type: ignore[misc]
            def persistent_id(self, obj: object) -> object:
                if obj is writer.namespace:
                    return ("ns",)
                if obj is not writer.current and id(obj) in writer.emitted:
                    return ("v", writer.emitted[id(obj)])
                return None

        self.pickler_class = Pickler

    def _header(self, fields: dict[str, Any]) -> None:
        self.out.write(json.dumps(fields, ensure_ascii=True).encode() + b"\n")

    def save(self, name: str, progress: str) -> None:
        value = self.namespace[name]
        kind = _type_name(value)
        if id(value) in self.emitted:  # another name for an object written already
            self._header({"name": name, "type": kind, "alias": self.emitted[id(value)]})
            self.kept.append(name)
            return
        if type(value).__name__ in FILE_TYPES and isinstance(value, io.IOBase):
            self.lost.append({"name": name, "type": kind, "reason": "an open file"})
            return
        with open(progress, "w") as fh:  # what the runner names if this never ends
            fh.write(name[:200])
        self.current = value
        inband, buffers = io.BytesIO(), []  # type: ignore[var-annotated]
        try:
            pickler = self.pickler_class(inband, protocol=5, buffer_callback=buffers.append)
            pickler.globals_ref[id(self.namespace)] = self.namespace  # functions: the live one
            pickler.dump(value)
        except BaseException as exc:  # the user's __reduce__ may raise anything, exits too
            self.lost.append({"name": name, "type": kind, "reason": _reason(exc)})
            return
        raw = [b.raw() for b in buffers]
        data = inband.getbuffer()
        self._header(
            {"name": name, "type": kind, "size": len(data), "buffers": [r.nbytes for r in raw]}
        )
        self.out.write(data)
        for chunk in raw:
            self.out.write(chunk)
        self.emitted[id(value)] = name
        self.kept.append(name)


def _write_all(config: dict[str, Any], namespace: dict[str, Any], out: IO[bytes]) -> dict[str, Any]:
    serialiser = load_serialiser(str(config["serialiser"]))
    out.write(MAGIC)
    meta = {"python": sys.version.split()[0], "serialiser": getattr(serialiser, "__version__", "")}
    out.write(json.dumps(meta).encode() + b"\n")
    writer = _Writer(serialiser, namespace, out)
    for name in candidates(namespace):
        writer.save(name, str(config["progress"]))
    out.write(b'{"end": true}\n')
    out.flush()
    kept = writer.kept[:MAX_LISTED]
    return {"kept": kept, "lost": writer.lost[:MAX_LISTED], "modules": modules_of(namespace, kept)}


def modules_of(namespace: dict[str, Any], names: list[str]) -> list[str]:
    """The top-level modules the values of ``names`` come from (a restore imports them
    while the bytes arrive): their types' modules, and the modules themselves."""
    found = set()
    for name in names:
        value = namespace.get(name)
        module = value.__name__ if isinstance(value, type(sys)) else type(value).__module__
        found.add(str(module or "").split(".")[0])
    found -= {"", "builtins", "__main__", SERIALISER}
    return sorted(found)[:MAX_MODULES]


def _child(config: dict[str, Any], namespace: dict[str, Any], fd: int) -> None:
    """The forked child: write the namespace to ``fd``, the report to its file, and exit."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # what the user's __reduce__ prints goes nowhere
            os.dup2(devnull, std)
        for inherited in config.get("close_fds") or []:
            try:
                os.close(int(inherited))
            except OSError:
                pass
        try:
            with open("/proc/self/oom_score_adj", "w") as fh:
                fh.write(CHILD_OOM_SCORE)
        except OSError:
            pass
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb", buffering=PIPE_SIZE) as out:
            report = _write_all(config, namespace, out)
            with open(str(config["report"]), "w") as fh:  # before the FIFO's end, its sign
                json.dump(report, fh)
        code = 0
    except BaseException:  # the exit status says so; the runner names the failure
        code = 1
    finally:
        os._exit(code)


def fork_snapshot(namespace: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Fork a child that writes ``namespace`` to the FIFO ``config["fifo"]``; the message
    for the runner (``pid``, or ``error``). The FIFO's only writer is the child: its end
    of file is the child's end."""
    try:
        load_serialiser(str(config["serialiser"]))  # once, in the kernel: every child has it
        try:
            with open("/proc/self/oom_score_adj", "w") as fh:
                fh.write(KERNEL_OOM_SCORE)
        except OSError:
            pass
        fd = os.open(str(config["fifo"]), os.O_WRONLY | os.O_NONBLOCK)
    except (OSError, ImportError, SyntaxError) as exc:
        return {"k": "snapshot", "error": _reason(exc)}
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # the default pipe size works, a little slower
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fork() with threads: the child only pickles
        pid = os.fork()
    if pid == 0:
        _child(config, namespace, fd)
    os.close(fd)
    return {"k": "snapshot", "pid": pid}


def reap(pids: list[int]) -> list[int]:
    """Reap the children that have exited; the pids still running."""
    running = []
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if not done:
            running.append(pid)
    return running


class _Reader:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def line(self) -> dict[str, Any]:
        raw = self.stream.readline(MAX_HEADER_BYTES)
        if not raw.endswith(b"\n"):
            raise ValueError("the checkpoint is cut short")
        fields = json.loads(raw)
        if not isinstance(fields, dict):
            raise ValueError("a malformed checkpoint record")
        return fields

    def exactly(self, size: int) -> bytearray:
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            n = self.stream.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise ValueError("the checkpoint is cut short")
            got += n
        return data


class _Unpickler(pickle.Unpickler):
    """Resolves the checkpoint's references: the namespace, and variables read before."""

    def __init__(
        self, data: bytearray, buffers: list[bytearray], namespace: dict[str, Any]
    ) -> None:
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.namespace = namespace

    def persistent_load(self, pid: Any) -> Any:
        if pid == ("ns",):
            return self.namespace
        if isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "v":
            if pid[1] in self.namespace:
                return self.namespace[pid[1]]
            raise pickle.UnpicklingError(f"it refers to {pid[1]}, which was not restored")
        raise pickle.UnpicklingError("an unknown reference")


def _read_all(reader: _Reader, namespace: dict[str, Any], report: dict[str, Any]) -> None:
    """Every record into ``namespace``; a record that does not load is listed lost."""
    if reader.stream.read(len(MAGIC)) != MAGIC:
        raise ValueError("not a checkpoint")
    reader.line()
    while True:
        record = reader.line()
        if record.get("end"):
            return
        name, kind = str(record.get("name")), str(record.get("type", ""))[:200]
        alias = record.get("alias")
        if alias is not None:
            if alias in namespace:
                namespace[name] = namespace[alias]
                report["restored"].append(name)
            else:
                reason = f"another name for {alias}, which was not restored"
                report["lost"].append({"name": name, "type": kind, "reason": reason})
            continue
        report["pending"] = {"name": name, "type": kind}
        data = reader.exactly(int(record["size"]))
        buffers = [reader.exactly(int(size)) for size in record.get("buffers") or []]
        try:
            namespace[name] = _Unpickler(data, buffers, namespace).load()
        except Exception as exc:  # the user's __reduce__ and __setstate__ may raise anything
            report["lost"].append({"name": name, "type": kind, "reason": _reason(exc)})
        else:
            report["restored"].append(name)
        report["pending"] = None


def restore(namespace: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint into ``namespace``; what came back and what did not (with why).

    A variable that fails to load is listed and the next is read (each is a pickle of
    its own); an interrupt (the runner's deadline) stops the reading where it is (the
    controller lists what was not read as lost). The file is removed as it is opened.
    """
    report: dict[str, Any] = {"k": "restored", "restored": [], "lost": [], "pending": None}
    path = str(config["path"])
    try:
        load_serialiser(str(config["serialiser"]))  # the pickles name its functions
        with open(path, "rb") as stream:
            os.unlink(path)
            _read_all(_Reader(stream), namespace, report)
        report["pending"] = None
    except KeyboardInterrupt:
        report["error"] = "the restore was interrupted at its time limit"
        pending = report["pending"]
        if pending is not None:
            report["lost"].append(dict(pending, reason=report["error"]))
    except (OSError, ValueError, KeyError, ImportError, SyntaxError) as exc:
        report["error"] = _reason(exc)
    report["restored"] = report["restored"][:MAX_LISTED]
    report["lost"] = report["lost"][:MAX_LISTED]
    del report["pending"]
    return report
