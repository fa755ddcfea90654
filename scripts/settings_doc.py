"""Write docs/settings.md from the Settings model (run: python scripts/settings_doc.py).

tests/unit/test_settings_doc.py fails when the file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic_core import PydanticUndefined

from ai_data_agent.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
HOST_DEPENDENT = {"max_concurrent_runs", "ca_bundle"}  # defaults that depend on the machine


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every setting is an environment variable with the prefix `AI_DATA_AGENT_` (built once",
        "by the entry point into one `Settings` object). Generated from",
        "`src/ai_data_agent/settings.py` by `scripts/settings_doc.py`; do not edit by hand.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        if name in HOST_DEPENDENT:
            default = "(computed)"
        elif field.default_factory is not None:
            default = repr(field.default_factory())  # type: ignore[call-arg]
        elif field.default is PydanticUndefined:
            default = "(required)"
        else:
            value = field.default
            default = str(value) if isinstance(value, Path) else repr(value)
        env = f"AI_DATA_AGENT_{name.upper()}"
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            env = " / ".join(f"`{c}`" for c in alias.choices if isinstance(c, str) and c.isupper())
        else:
            env = f"`{env}`"
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| {env} | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
