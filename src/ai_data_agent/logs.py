"""Log sinks for the entry points (CLI, daemon). Library modules only ``bind`` and log.

Entry points call it once::

    configure_logging("INFO")                # human-readable lines on stderr
    configure_logging("INFO", json=True)     # JSON lines, for log shippers
"""

from __future__ import annotations

import sys

from loguru import logger

__all__ = ["configure_logging"]

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "{extra[run_id]} | <level>{message}</level>"
)


def configure_logging(level: str, *, json: bool = False) -> None:
    """Replace loguru's sinks with one stderr sink at ``level``."""
    logger.remove()
    logger.configure(extra={"run_id": "-"})
    if json:
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(sys.stderr, level=level, format=HUMAN_FORMAT, colorize=None)
