"""Item 3: a memory bomb, in the main process or only in a child, is `memory_exceeded`.

The bombs are bounded (1 GiB) so that a missing limit fails the test instead
of eating the host.
"""

from __future__ import annotations

import pytest

from .conftest import Battery

pytestmark = pytest.mark.integration

# Touched memory (not calloc'd zero pages, which cost nothing until written).
BOMB = "chunks = []\nfor _ in range(64):\n    chunks.append(b'x' * (16 << 20))\n"
CHILD_BOMB = (
    "import subprocess, sys\n"
    f"subprocess.run([sys.executable, '-c', {BOMB!r}])\n"
    "print('parent survived')\n"
)


@pytest.mark.parametrize("code", [BOMB, CHILD_BOMB], ids=["main-process", "child-only"])
def test_memory_bomb_is_memory_exceeded(battery: Battery, code: str) -> None:
    outcome = battery.run(code, memory_mb=256, timeout_s=30)

    assert outcome.result.status == "memory_exceeded", (
        outcome.result.exit_code,
        outcome.result.error,
        outcome.result.stderr[-1000:],
    )
    battery.assert_host_unchanged()


def test_benign_twin_allocation_under_the_limit_succeeds(battery: Battery) -> None:
    code = "data = b'x' * (96 << 20)\nprint(len(data) >> 20)\n"

    outcome = battery.run(code, memory_mb=256)

    assert outcome.result.status == "succeeded", (outcome.result.error, outcome.result.stderr)
    assert outcome.result.stdout == "96\n"
    battery.assert_host_unchanged()
