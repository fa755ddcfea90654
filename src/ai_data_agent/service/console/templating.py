"""The console's templates: Jinja2 with autoescape on, and the filters its pages use.

    templates = Templates()
    html = templates.render("run.html", {"record": record, ...})

Every value a template prints is escaped unless it is `Markup` made here (the
highlighter's output); a file name in a URL goes through ``quote``. Undefined
names are errors, so a template mistake fails a test instead of printing nothing.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from ai_data_agent.service.console.highlight import highlight

__all__ = ["Templates", "duration", "size", "when"]


def when(value: datetime | None) -> str:
    """A time in UTC, to the second."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {rest} s"
    hours = minutes // 60
    return f"{hours} h {minutes % 60} min" if hours < 48 else f"{hours / 24:g} d"


def size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def between(start: datetime | None, end: datetime | None) -> str:
    """The time from ``start`` to ``end`` (or to now while it goes on)."""
    if start is None:
        return ""
    return duration(((end or datetime.now(UTC)) - start).total_seconds())


def first_line(code: str, limit: int = 100) -> str:
    """The first line of ``code`` that says something, cut at ``limit`` characters."""
    for line in code.splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 1] + "…"
    return ""


def quote(path: str) -> str:
    """A relative path for a URL: each segment percent-encoded, the slashes kept."""
    return urllib.parse.quote(path, safe="/")


class Templates:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("ai_data_agent.service.console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            when=when,
            duration=duration,
            size=size,
            between=between,
            first_line=first_line,
            quote=quote,
            highlight=highlight,
        )

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)
