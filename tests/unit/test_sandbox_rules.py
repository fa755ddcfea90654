"""The rule that matters most: ``sandbox/`` runs in an unmodified ``python:3.12-slim``.

So it imports only the standard library, nothing of the rest of the package,
and parses as Python 3.9 (the oldest interpreter an image may bring).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import ai_data_agent.sandbox

SANDBOX_DIR = Path(ai_data_agent.sandbox.__file__).parent
SANDBOX_FILES = sorted(SANDBOX_DIR.glob("*.py"))
OLDEST_PYTHON = (3, 9)


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """(top-level module, relative level) of every import, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(((node.module or "").split(".")[0], node.level))
    return found


def test_the_sandbox_package_has_files() -> None:
    assert {p.name for p in SANDBOX_FILES} >= {"__init__.py", "runner.py"}


@pytest.mark.parametrize("path", SANDBOX_FILES, ids=lambda p: p.name)
def test_imports_only_the_standard_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for module, level in imported_modules(tree):
        assert level == 0, f"{path.name}: relative import (sandbox imports nothing of the package)"
        assert module in sys.stdlib_module_names, f"{path.name}: imports non-stdlib {module!r}"
        assert module != "ai_data_agent"


@pytest.mark.parametrize("path", SANDBOX_FILES, ids=lambda p: p.name)
def test_parses_with_python_39_grammar(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path), feature_version=OLDEST_PYTHON)


@pytest.mark.parametrize("path", SANDBOX_FILES, ids=lambda p: p.name)
def test_no_union_types_evaluated_at_run_time(path: Path) -> None:
    """``X | Y`` needs Python 3.10 when evaluated; the 3.9 grammar check cannot see that."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lazy_annotations = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in {"isinstance", "issubclass"} and len(node.args) == 2:
                assert not _has_union(node.args[1]), (
                    f"{path.name}:{node.lineno}: {node.func.id} with X | Y needs Python 3.10"
                )
        for annotation in _annotations(node):
            assert lazy_annotations or not _has_union(annotation), (
                f"{path.name}:{getattr(node, 'lineno', '?')}: X | Y annotation without "
                "`from __future__ import annotations`"
            )


def _has_union(node: ast.AST) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(node))


def _annotations(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
        return [node.annotation]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        return [node.returns]
    return []


def test_the_check_catches_what_it_should() -> None:
    tree = ast.parse("import numpy\nfrom ai_data_agent import models\nfrom . import x\n")
    modules = imported_modules(tree)
    assert ("numpy", 0) in modules and ("ai_data_agent", 0) in modules and ("", 1) in modules
    assert "numpy" not in sys.stdlib_module_names
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=OLDEST_PYTHON)


def test_runs_under_isolated_mode_without_the_package() -> None:
    """The runner module object needs nothing from ``ai_data_agent`` once loaded."""
    source = (SANDBOX_DIR / "runner.py").read_text(encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "isolated_runner"}
    exec(compile(source, "runner.py", "exec"), namespace)
    assert callable(namespace["main"])
    assert not any(
        getattr(value, "__name__", "").startswith("ai_data_agent")
        for value in namespace.values()
        if isinstance(value, type(sys))
    )
