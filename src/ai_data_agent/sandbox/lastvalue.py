"""A run's code as ``python main.py`` runs it, keeping the value of its last expression.

    value = run_source(source, path, namespace)    # in the code's interpreter (`preload`)
    write_value(value, display_source, value_path)
    bundle = read_value(value_path)                # in the runner: untrusted

When the code's last statement is an expression whose value is not None (and
the code does not end with ``;``, as in Jupyter), that value's MIME bundle
(`display`, whose source the runner sends) is written as JSON to the value
file, within `VALUE_MAX_BYTES`; the runner reads it back as untrusted as
anything the code writes. Standard library only, Python >= 3.9.
"""

import os
import stat

MAIN_FILE = "main.py"
ONLY_AST = 0x400  # ast.PyCF_ONLY_AST
VALUE_MAX_BYTES = 1024 * 1024  # the bundle as JSON; richer representations go first


def write_value(value: object, display_source: str, path: str) -> None:
    """The bundle of ``value`` as JSON at ``path`` (nothing on a full disk)."""
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


def run_source(source: bytes, path: str, namespace: "dict[str, object]") -> object:
    """Run ``source`` (the code at ``path``) in ``namespace``; the value of its last
    expression statement, or None. Raises what the code raises (a SyntaxError first)."""
    # The C module, not ast: ast imports contextlib, collections and functools, which a
    # hello world would pay for on every run. (Imported here: the runner needs none of it.)
    import _ast

    tree = compile(source, path, "exec", ONLY_AST, dont_inherit=True)
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
    if last is not None and not source.rstrip().endswith(b";"):
        tree.body.pop()
    else:
        last = None
    exec(compile(tree, path, "exec", dont_inherit=True), namespace)  # noqa: S102 (the user's code)
    if last is None:
        return None
    expression = compile(_ast.Expression(last.value), path, "eval", dont_inherit=True)
    return eval(expression, namespace)  # noqa: S307 (the user's code)


def read_value(path: str) -> "dict[str, object] | None":
    """The bundle the code's interpreter wrote, when it is a regular file of the right shape."""
    from ai_data_agent.sandbox.wirejson import loads  # in the runner: no `json` there

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
        found = loads(raw)
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
