"""Log sinks for the entry points (CLI, daemon). Library modules only ``bind`` and log.

Entry points call it once::

    configure_logging("INFO")                # human-readable lines on stderr
    configure_logging("INFO", json=True)     # JSON lines, for log shippers
    configure_logging("WARNING", filter=SayOnce(cache_dir / "notices"))   # the CLI
    route_std_logging("INFO")                # servers: uvicorn's and psycopg's records too

A library module marks a notice that a person needs to read only once (a
fallback that will happen on every run) with ``logger.bind(once=KEY)``;
`SayOnce` lets such a record through the first time for a key and leaves a
marker file, so that a command run again and again does not repeat it.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["InterceptHandler", "SayOnce", "configure_logging", "route_std_logging"]

HUMAN_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "{extra[run_id]} | <level>{message}</level>"
)


class SayOnce:
    """A sink filter: a record bound with ``once=KEY`` passes only the first time for
    ``KEY`` (a marker file under ``directory``); every other record passes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, record: Record) -> bool:
        key = record["extra"].get("once")
        if key is None:
            return True
        marker = self.directory / hashlib.sha256(str(key).encode()).hexdigest()[:32]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            marker.touch(exist_ok=False)
        except FileExistsError:
            return False
        except OSError:
            return True  # nowhere to remember it: better said again than never
        return True


def configure_logging(
    level: str, *, json: bool = False, filter: Callable[[Record], bool] | None = None
) -> None:
    """Replace loguru's sinks with one stderr sink at ``level`` (records ``filter`` lets pass)."""
    logger.remove()
    logger.configure(extra={"run_id": "-"})
    if json:
        logger.add(sys.stderr, level=level, serialize=True, filter=filter)
    else:
        logger.add(sys.stderr, level=level, format=HUMAN_FORMAT, colorize=None, filter=filter)


class InterceptHandler(logging.Handler):
    """Standard-library records (uvicorn's, psycopg's) into loguru, at their own level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def route_std_logging(level: str) -> None:
    """Send the standard library's records to loguru at ``level`` (a server's entry point)."""
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    if level not in ("TRACE", "DEBUG"):  # the database pool narrates at INFO
        logging.getLogger("psycopg").setLevel(logging.WARNING)
