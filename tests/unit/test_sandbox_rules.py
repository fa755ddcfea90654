"""The rule that matters most: ``sandbox/`` runs in an unmodified ``python:3.12-slim``.

So it imports only the standard library and its own modules (absolutely, as
``ai_data_agent.sandbox.x``, which the bootstrap serves from memory), nothing
of the rest of the package, and parses as Python 3.9 (the oldest interpreter
an image may bring). Every module it needs travels in the bundle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ai_data_agent.sandbox
from ai_data_agent.executor.delivery import SANDBOX_MODULES, bundle
from ai_data_agent.sandbox.bootstrap import source_of

SANDBOX_DIR = Path(ai_data_agent.sandbox.__file__).parent
SANDBOX_FILES = sorted(SANDBOX_DIR.glob("*.py"))
OLDEST_PYTHON = (3, 9)


OWN = "ai_data_agent.sandbox"


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """(full module name, relative level) of every import, nested ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == OWN:  # from ai_data_agent.sandbox import envstore
                found += [(f"{OWN}.{alias.name}", 0) for alias in node.names]
            else:
                found.append((module, node.level))
    return found


def test_the_sandbox_package_has_files() -> None:
    assert {p.name for p in SANDBOX_FILES} >= {"__init__.py", "bootstrap.py", "runner.py"}


def test_the_bundle_carries_every_sandbox_module() -> None:
    modules = {p.stem for p in SANDBOX_FILES} - {"__init__"}
    assert set(SANDBOX_MODULES) == modules


@pytest.mark.parametrize("path", SANDBOX_FILES, ids=lambda p: p.name)
def test_imports_only_the_standard_library_and_its_own_modules(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for module, level in imported_modules(tree):
        assert level == 0, f"{path.name}: relative import (the bootstrap serves absolute names)"
        if module.startswith(OWN + "."):
            assert module.removeprefix(OWN + ".") in SANDBOX_MODULES, f"{path.name}: {module}"
            continue
        top = module.split(".")[0]
        assert top in sys.stdlib_module_names, f"{path.name}: imports non-stdlib {module!r}"


def test_the_package_init_imports_nothing() -> None:
    tree = ast.parse((SANDBOX_DIR / "__init__.py").read_text(encoding="utf-8"))
    assert imported_modules(tree) == []


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
    own = imported_modules(ast.parse("from ai_data_agent.sandbox import envstore\n"))
    assert own == [("ai_data_agent.sandbox.envstore", 0)]
    assert "numpy" not in sys.stdlib_module_names
    with pytest.raises(SyntaxError):
        ast.parse("match x:\n    case 1:\n        pass\n", feature_version=OLDEST_PYTHON)


LOAD_EVERY_MODULE = """
import importlib, json, sys
namespace = {"__name__": "bootstrap"}
exec(BOOTSTRAP, namespace)
bundle = namespace["read_bundle"](sys.stdin.buffer)
namespace["install"](bundle)
for name in sorted(bundle["sources"]):
    importlib.import_module(name)
print(json.dumps(sorted(n for n in sys.modules if n.startswith("ai_data_agent"))))
"""


def with_the_bundle(script: str) -> bytes:
    """What ``script`` prints in ``python -I -S`` (no site-packages, no package on disk),
    given the bootstrap's source as ``BOOTSTRAP`` and the bundle on stdin."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"BOOTSTRAP = {source_of('bootstrap')!r}\n{script}"],
        input=bundle(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def test_every_module_loads_from_the_bundle_alone_in_isolated_mode() -> None:
    loaded = json.loads(with_the_bundle(LOAD_EVERY_MODULE))
    assert loaded == sorted(["ai_data_agent", OWN, *(f"{OWN}.{m}" for m in SANDBOX_MODULES)])


LOAD_THE_RUNNER = """
import sys
namespace = {"__name__": "bootstrap"}
exec(BOOTSTRAP, namespace)
namespace["install"](namespace["read_bundle"](sys.stdin.buffer))
__import__("ai_data_agent.sandbox.runner")
print(sorted(HEAVY & set(sys.modules)))
"""
# What a fresh interpreter pays milliseconds of CPU for, and the runner does without.
HEAVY = {"enum", "importlib", "json", "re", "signal", "subprocess", "threading", "types"}


def test_the_runner_loads_without_the_heavy_standard_modules() -> None:
    assert with_the_bundle(f"HEAVY = {HEAVY!r}\n" + LOAD_THE_RUNNER) == b"[]\n"


MAKE_UNDUMPABLE = """
import sys
namespace = {"__name__": "bootstrap"}
exec(BOOTSTRAP, namespace)
namespace["install"](namespace["read_bundle"](sys.stdin.buffer))
__import__("ai_data_agent.sandbox.environment")
sys.modules["ai_data_agent.sandbox.environment"].make_undumpable()
heavy = sorted({"ctypes", "struct", "types"} & set(sys.modules))
import ctypes
print(heavy, ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE
"""


def test_the_runner_makes_itself_undumpable_without_importing_ctypes() -> None:
    assert with_the_bundle(MAKE_UNDUMPABLE) == b"[] 0\n"
