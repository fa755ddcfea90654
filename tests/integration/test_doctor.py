"""`ai-data-agent doctor` on this machine's engine: every check passes, and the report says so.

The doctor makes its own executor from the settings; its probe installs ``six``
into the run's sandbox, so this needs the package index (and the CA bundle
behind a TLS-intercepting proxy), like the rest of the suite.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ai_data_agent.doctor import print_report, run_checks
from ai_data_agent.settings import Settings

pytestmark = pytest.mark.integration


def test_every_check_passes_and_is_reported(settings: Settings) -> None:
    checks = run_checks(settings)

    failed = [(check.name, check.detail) for check in checks if not check.ok]
    assert not failed, failed
    names = [check.name for check in checks]
    assert {"Temp dirs cleaned up", "Errors handled in container", "No container left"} <= set(
        names
    )
    out = io.StringIO()
    print_report(checks, Console(file=out, width=200, color_system=None))
    report = out.getvalue()
    assert report.count("PASS") == len(checks) and "FAIL" not in report
