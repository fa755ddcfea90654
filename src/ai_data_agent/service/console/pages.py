"""The console's pages, as the navigation shows them: the one list a new page is added to.

    RUNS = Page("runs", "Runs")                       # /console/runs, for everyone
    TENANTS = Page("tenants", "Tenants", admin_only=True)

A page module (`runs`, `sessions`, `health`) defines its `Page` and a router;
`app.SECTIONS` pairs them, in the order of the navigation. docs/console.md says
how to add one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ai_data_agent.errors import RequestRejected
from ai_data_agent.tenant_models import Principal

__all__ = ["SINCE", "Page", "since_cutoff"]

# The ages a list may be narrowed to, in seconds.
SINCE = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}


@dataclass(frozen=True)
class Page:
    """One entry of the navigation: ``/console/<key>``, titled ``title``."""

    key: str
    title: str
    admin_only: bool = False

    def visible_to(self, principal: Principal) -> bool:
        return principal.is_admin or not self.admin_only


def since_cutoff(since: str | None) -> float | None:
    """The unix time an age filter (a key of `SINCE`) starts at; None for none.

    Raises:
        RequestRejected: not a key of `SINCE`.
    """
    if not since:
        return None
    if since not in SINCE:
        raise RequestRejected("since", f"must be one of {', '.join(SINCE)}")
    return time.time() - SINCE[since]
