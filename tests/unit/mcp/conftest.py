"""Fixtures of the MCP unit tests: the daemon's fakes (tests/unit/service) are shared."""

from __future__ import annotations

import sys
from pathlib import Path

# The daemon's in-process fakes live beside its own tests; /mcp is tested with the same.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
