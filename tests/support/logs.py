"""What loguru logs during a test, as (level, message) records.

    with captured_logs() as lines:
        executor.run(request)
    assert any(line.level == "WARNING" for line in lines)

The ``log_lines`` fixture (tests/conftest.py) wraps this for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from loguru import logger

__all__ = ["LogLine", "captured_logs"]


@dataclass(frozen=True)
class LogLine:
    level: str
    message: str


@contextmanager
def captured_logs(level: str = "TRACE") -> Iterator[list[LogLine]]:
    lines: list[LogLine] = []
    handler_id = logger.add(
        lambda msg: lines.append(LogLine(msg.record["level"].name, msg.record["message"])),
        level=level,
        format="{message}",
    )
    try:
        yield lines
    finally:
        logger.remove(handler_id)
