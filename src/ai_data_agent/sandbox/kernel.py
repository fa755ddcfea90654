"""The session kernel: cells run one at a time in one persistent namespace, as a notebook does.

The runner starts it as a separate interpreter (``python3 -c <bootstrap>``, exec,
never a fork of the runner: it must not inherit the frame token) with the
session's env and ``work/`` as its cwd, sends it the bundle of sandbox modules
on stdin, and talks to it over two pipes named in ``AI_DATA_AGENT_KERNEL``
(commands in, length-prefixed JSON; results out, JSON lines). The code's
stdout and stderr are the kernel's own fds 1 and 2, which the runner reads;
its stdin is /dev/null.

Per cell (``{"op": "cell", "code": ..., "count": n}``) the kernel answers with
``display`` messages as they happen (``display(obj)``, ``IPython.display``
when the code imports it, matplotlib figures open at the end of the cell) and
one ``done``: status ``ok``, ``error`` (ename, evalue, traceback showing the
cell's lines) or ``interrupted`` (SIGINT from the runner), and the MIME bundle
of the last expression's value (none when the cell ends with ``;``). Top-level ``await`` works. ``%magics`` and
``!commands`` are refused. Everything it says is size-capped JSON; the runner
trusts none of it. The kernel raises its own ``oom_score_adj``, so that an
out-of-memory kill takes the kernel, never the runner.

Standard library only, Python >= 3.9.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import signal
import sys
import traceback
import types

from ai_data_agent.sandbox import snapshot
from ai_data_agent.sandbox.channel import read_message
from ai_data_agent.sandbox.display import fit, mime_bundle

TYPE_CHECKING = False  # typing is not imported at run time: every start counts
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

CONFIG_VARIABLE = "AI_DATA_AGENT_KERNEL"
OWN_DIR = os.path.dirname(__file__)  # where this package's modules are (in memory, in a sandbox)
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
MAX_TRACEBACK_CHARS = 20_000
MAGIC_HINT = (
    "{what} are not available in a session: the sandbox has no shell and no network. "
    "Add packages with POST /v1/sessions/{{id}}/packages (the `install` call of the "
    "client, `ai-data-agent session install`, or the install_packages tool over MCP)."
)
IPYTHON_DISPLAY_MODULES = (
    "IPython.core.display_functions",
    "IPython.display",
    "IPython.core.display",
)


def raise_oom_score() -> None:
    """Make this process (and what it starts) the one the OOM killer picks first."""
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("1000")
    except OSError:
        pass


class Control:
    """The pipes to the runner: messages in, JSON lines out."""

    def __init__(self, incoming: IO[bytes], outgoing: IO[bytes]) -> None:
        self.incoming = incoming
        self.outgoing = outgoing

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, ensure_ascii=True, default=str).encode() + b"\n"
        # An interrupt waits until the line is whole; it lands in the code right after.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.outgoing.write(line)
            self.outgoing.flush()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def receive(self) -> dict[str, Any]:
        return read_message(self.incoming)


def _own(filename: str) -> bool:
    """A frame of this package's code (the kernel's, its display's), not of the user's."""
    return os.path.dirname(filename) == OWN_DIR


def _users_frames(stack: traceback.StackSummary, top: bool) -> traceback.StackSummary:
    """The user's frames: none of the kernel's own (the SIGINT handler that raises an
    interrupt's ``KeyboardInterrupt`` is one), and at the top from the first cell's on."""
    frames = list(stack)
    while top and frames and not frames[0].filename.startswith("<cell "):
        frames.pop(0)
    return traceback.StackSummary.from_list([f for f in frames if not _own(f.filename)])


def error_report(exc: BaseException) -> dict[str, Any]:
    """Jupyter's ``error`` shape: ename, evalue, traceback lines that show the user's code."""
    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    todo, seen = [(report, True)], set()
    while todo:  # the exception, and those it was raised from or during (groups too)
        entry, top = todo.pop()
        if id(entry) not in seen:
            seen.add(id(entry))
            entry.stack = _users_frames(entry.stack, top)
            linked = [
                entry.__cause__,
                entry.__context__,
                *(getattr(entry, "exceptions", None) or []),
            ]
            todo += [(other, False) for other in linked if other is not None]
    lines = list(report.format())
    text = "".join(lines)
    if len(text) > MAX_TRACEBACK_CHARS:
        lines = ["[...]\n", text[-MAX_TRACEBACK_CHARS:]]
    return {"ename": type(exc).__name__, "evalue": str(exc)[:2000], "traceback": lines}


def magic_error(code: str, exc: SyntaxError) -> dict[str, Any] | None:
    """A refusal naming the packages endpoint, when the syntax error is a magic or a shell line."""
    lines = code.splitlines()
    line = lines[exc.lineno - 1].lstrip() if exc.lineno and exc.lineno <= len(lines) else ""
    if not line.startswith(("%", "!")):
        return None
    what = "%magics" if line.startswith("%") else "!shell commands"
    message = MAGIC_HINT.format(what=what)
    return {"ename": "UnsupportedMagic", "evalue": message, "traceback": [message + "\n"]}


class _AfterImport:
    """Calls ``patch(module)`` right after one of ``names`` is imported (once each)."""

    def __init__(self, names: tuple[str, ...], patch: Callable[[types.ModuleType], None]) -> None:
        self.names = set(names)
        self.patch = patch

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in self.names:
            return None
        import importlib.util

        self.names.discard(name)
        sys.meta_path.remove(self)  # type: ignore[arg-type]
        try:
            spec = importlib.util.find_spec(name)
        finally:
            if self.names:
                sys.meta_path.insert(0, self)  # type: ignore[arg-type]
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module
        patch = self.patch

        def exec_module(module: types.ModuleType) -> None:
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class Kernel:
    """One namespace, one cell at a time. See the module docstring."""

    def __init__(self, control: Control, config: dict[str, Any]) -> None:
        self.control = control
        self.output_max = int(config.get("display_max_bytes", 2 * 1024 * 1024))
        self.cell_max = int(config.get("cell_display_max_bytes", 8 * 1024 * 1024))
        self.module = types.ModuleType("__main__")
        self.module.__dict__.update({"__builtins__": builtins, "display": self.display})
        sys.modules["__main__"] = self.module
        self.executing = False
        self.cell_bytes = 0
        self.cell_truncated = False
        self.loop: Any = None
        self.children: list[int] = []  # checkpoints' writers, reaped as they end
        signal.signal(signal.SIGINT, self._on_sigint)
        sys.meta_path.insert(0, _AfterImport(IPYTHON_DISPLAY_MODULES, self._patch_ipython))  # type: ignore[arg-type]

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.executing:  # between cells an interrupt has nothing to stop
            raise KeyboardInterrupt

    def _patch_ipython(self, module: types.ModuleType) -> None:
        if hasattr(module, "display"):
            setattr(module, "display", self.display)  # noqa: B010 (a module mypy cannot know)

    # -- output ---------------------------------------------------------------------
    def _bundle(self, obj: object) -> dict[str, Any] | None:
        """The capped MIME bundle of ``obj``; None once the cell's display budget is spent."""
        data, metadata = mime_bundle(obj)
        data, cut = fit(data, min(self.output_max, max(self.cell_max - self.cell_bytes, 0)))
        size = len(json.dumps(data, default=str))
        if self.cell_bytes + size > self.cell_max:
            self.cell_truncated = True
            return None
        self.cell_bytes += size
        self.cell_truncated |= cut
        return {"data": data, "metadata": metadata, "truncated": cut}

    def display(self, *objs: object, **_options: object) -> None:
        """Show each object as a rich output of the running cell (IPython's ``display``)."""
        for obj in objs:
            self._flush_streams()
            bundle = self._bundle(obj)
            if bundle is not None:
                self.control.send({"k": "display", **bundle})

    @staticmethod
    def _flush_streams() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass

    def _show_figures(self) -> None:
        """Matplotlib figures still open become PNG outputs of this cell, and are closed."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        try:
            for num in plt.get_fignums():
                figure = plt.figure(num)
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png")
                plt.close(figure)
                self.display(_PngImage(buffer.getvalue(), repr(figure)))
        except Exception as exc:
            sys.stderr.write(f"ai-data-agent: could not render figures: {exc!r}\n")

    # -- cells ----------------------------------------------------------------------
    def _execute(self, node: ast.Module | ast.Expression, filename: str, mode: str) -> Any:
        flags: int = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
        code = compile(node, filename, mode, flags=flags)
        namespace = self.module.__dict__
        if not code.co_flags & CO_COROUTINE:
            return eval(code, namespace)  # noqa: S307 (the cell is the user's code)
        import asyncio

        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(eval(code, namespace))  # noqa: S307

    def run_cell(self, code: str, count: int) -> dict[str, Any]:
        filename = f"<cell {count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        self.cell_bytes, self.cell_truncated = 0, False
        done: dict[str, Any] = {"k": "done", "count": count, "status": "ok", "result": None}
        try:
            tree = ast.parse(code, filename)
        except SyntaxError as exc:
            done.update(status="error", error=magic_error(code, exc) or error_report(exc))
            return done
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if code.rstrip().endswith(";"):
            last = None  # as in Jupyter: a trailing semicolon hides the value
        if last is not None:
            tree.body.pop()
        value = None
        self.executing = True
        try:
            self._execute(ast.Module(body=tree.body, type_ignores=[]), filename, "exec")
            if last is not None:
                value = self._execute(ast.Expression(last.value), filename, "eval")
        except KeyboardInterrupt as exc:
            done.update(status="interrupted", error=error_report(exc))
        except BaseException as exc:  # SystemExit too: a cell never ends the kernel
            done.update(status="error", error=error_report(exc))
        finally:
            self.executing = False
        self._show_figures()
        if value is not None:
            self.module.__dict__["_"] = value
            done["result"] = self._bundle(value)
        self._flush_streams()
        done["truncated"] = self.cell_truncated
        return done

    def imported(self, names: list[str], paths: list[str]) -> list[str]:
        """Which of the distributions ``names`` (found in ``paths``) have modules imported now."""
        from importlib import metadata

        wanted = {n.lower().replace("_", "-") for n in names}
        found = []
        for dist in metadata.distributions(path=paths):
            name = str(dist.metadata["Name"] or "")
            if name.lower().replace("_", "-") not in wanted:
                continue
            tops = (dist.read_text("top_level.txt") or "").split()
            tops += [str(f).split("/")[0].removesuffix(".py") for f in dist.files or []]
            if any(top in sys.modules for top in tops if top and "." not in top):
                found.append(name)
        return sorted(set(found))

    def switch_env(self, message: dict[str, Any]) -> dict[str, Any]:
        """Put a new cached environment on ``sys.path`` in place of the old one."""
        add, remove = list(message.get("add") or []), list(message.get("remove") or [])
        imported = self.imported(list(message.get("watch") or []), remove)
        home = os.environ.get("HOME", "")
        position = sys.path.index(home) + 1 if home in sys.path else 0
        sys.path[:] = [p for p in sys.path if p not in remove and p not in add]
        sys.path[position:position] = add
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p not in remove]
        os.environ["PYTHONPATH"] = os.pathsep.join(parts[:1] + add + parts[1:])
        import importlib

        importlib.invalidate_caches()
        return {"k": "env", "imported": imported}

    def serve(self) -> None:
        self.control.send({"k": "ready", "pid": os.getpid()})
        while True:
            try:
                message = self.control.receive()
            except EOFError:
                return
            if message.get("op") == "cell":
                done = self.run_cell(str(message.get("code", "")), int(message.get("count", 0)))
                self.control.send(done)
            elif message.get("op") == "env":
                self.control.send(self.switch_env(message))
            elif message.get("op") in ("snapshot", "restore"):
                self.control.send(self.checkpoint(message))
            elif message.get("op") == "serialiser":  # a restore is coming: import it now
                self.control.send(snapshot.preload(message))

    def checkpoint(self, message: dict[str, Any]) -> dict[str, Any]:
        """Fork the writer of a checkpoint, or read one back (interruptible, as a cell is)."""
        self.children = snapshot.reap(self.children)
        if message.get("op") == "snapshot":
            pipes = [self.control.incoming.fileno(), self.control.outgoing.fileno()]
            reply = snapshot.fork_snapshot(self.module.__dict__, dict(message, close_fds=pipes))
            self.children += [reply["pid"]] if "pid" in reply else []
            return reply
        self.executing = True
        try:
            return snapshot.restore(self.module.__dict__, message)
        finally:
            self.executing = False


class _PngImage:
    """A rendered figure, as display() shows it."""

    def __init__(self, png: bytes, text: str) -> None:
        self.png = png
        self.text = text

    def _repr_png_(self) -> bytes:
        return self.png

    def __repr__(self) -> str:
        return self.text


def take_control() -> tuple[Control, dict[str, Any]]:
    """The pipes and settings the runner passed; stdin becomes /dev/null for the code."""
    config = json.loads(os.environ.pop(CONFIG_VARIABLE))
    for fd in (config["in"], config["out"]):
        os.set_inheritable(fd, False)  # the code's own subprocesses never get them
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    incoming = os.fdopen(config["in"], "rb")
    outgoing = os.fdopen(config["out"], "wb")
    return Control(incoming, outgoing), config


def main() -> int:
    raise_oom_score()
    control, config = take_control()
    # The code may import a real package of that name: forget the bundle's.
    for name in [n for n in sys.modules if n.startswith("ai_data_agent")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "SourceLoader"]
    Kernel(control, config).serve()
    return 0
