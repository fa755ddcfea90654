"""A run's code as ``python main.py`` runs it, keeping the value of its last expression.

The runner starts ``python3 -c <this file> <display's source> <value file>`` in
the work dir instead of ``python3 main.py``. main.py runs as ``__main__``: a
module of its own, with ``__file__``, ``sys.argv`` and ``sys.path[0]`` as
``python main.py`` gives them, so ``if __name__ == "__main__":``, pickling and
relative imports behave the same. An uncaught exception prints its traceback
(without this file's frames) and exits 1; ``SystemExit`` ends it as usual.
When the code's last statement is an expression whose value is not None (and
the code does not end with ``;``, as in Jupyter), that value's MIME bundle
(`display`, whose source comes as the first argument) is written as JSON to
the value file, within `VALUE_MAX_BYTES`: the runner reads it back (`read_value`),
as untrusted as anything the code writes.

Standard library only, Python >= 3.9; `main` runs in the code's own
interpreter, `read_value` in the runner.
"""

import builtins
import os
import stat
import sys

TYPE_CHECKING = False  # typing, types and __future__ are not imported: every run starts here
if TYPE_CHECKING:
    from types import TracebackType

MAIN_FILE = "main.py"
ONLY_AST = 0x400  # ast.PyCF_ONLY_AST
VALUE_MAX_BYTES = 1024 * 1024  # the bundle as JSON; richer representations go first


def _own_frames_skipped(tb: "TracebackType | None") -> "TracebackType | None":
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    return tb


def _write_value(value: object, display_source: str, path: str) -> None:
    import json

    display: dict[str, object] = {"__name__": "ai_data_agent_display"}
    exec(compile(display_source, "display.py", "exec"), display)  # noqa: S102 (our module)
    data, metadata = display["mime_bundle"](value)  # type: ignore[operator]
    data, cut = display["fit"](data, VALUE_MAX_BYTES)  # type: ignore[operator]
    body = {"data": data, "metadata": metadata, "truncated": cut}
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(body, fh, ensure_ascii=True, default=str)
    except OSError:
        pass  # a full disk: the run keeps its outcome, without the value


def main() -> int:
    # The C module, not ast: ast imports contextlib, collections and functools, which a
    # hello world would pay for on every run. (Imported here: the runner needs none of it.)
    import _ast

    display_source, value_path = sys.argv[1], sys.argv[2]
    path = os.path.abspath(MAIN_FILE)
    sys.argv = [MAIN_FILE]
    sys.path[0] = os.path.dirname(path)
    module = type(sys)("__main__")
    module.__dict__.update(__file__=path, __builtins__=builtins, __spec__=None)
    sys.modules["__main__"] = module
    with open(path, "rb") as fh:
        source = fh.read()
    try:
        tree = compile(source, path, "exec", ONLY_AST)
    except SyntaxError as exc:  # as python reports it: where, and no frame of ours or ast's
        sys.excepthook(SyntaxError, exc.with_traceback(None), None)
        return 1
    try:
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
        if last is not None and not source.rstrip().endswith(b";"):
            tree.body.pop()
        else:
            last = None
        exec(compile(tree, path, "exec"), module.__dict__)  # noqa: S102 (the user's code)
        value = None
        if last is not None:
            value = eval(compile(_ast.Expression(last.value), path, "eval"), module.__dict__)  # noqa: S307
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        users = _own_frames_skipped(exc.__traceback__)  # the hook prints the exception's own
        sys.excepthook(type(exc), exc.with_traceback(users), users)
        return 1
    if value is not None:
        _write_value(value, display_source, value_path)
    return 0


def read_value(path: str) -> "dict[str, object] | None":
    """The bundle the code's interpreter wrote, when it is a regular file of the right shape."""
    import json

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > 2 * VALUE_MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            raw = fh.read(2 * VALUE_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        found = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("data"), dict):
        return None
    metadata = found.get("metadata")
    return {
        "data": found["data"],
        "metadata": metadata if isinstance(metadata, dict) else {},
        "truncated": found.get("truncated") is True,
    }


if __name__ == "__main__":
    sys.exit(main())
