"""docs/settings.md is generated from Settings; it must not drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settings_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "settings_doc", ROOT / "scripts" / "settings_doc.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert (ROOT / "docs" / "settings.md").read_text() == module.render(), (
        "docs/settings.md is stale: run `python scripts/settings_doc.py`"
    )
