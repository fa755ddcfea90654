"""``python -m ai_data_agent.service [--host H] [--port P] [--insecure]``: run the daemon.

Settings come from ``AI_DATA_AGENT_*`` variables, as for ``ai-data-agent serve``.
Exit status 2 when the settings or the bind policy refuse to start.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from ai_data_agent.errors import ConfigurationError, RequestRejected
from ai_data_agent.service.server import serve
from ai_data_agent.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ai_data_agent.service", description="Run the ai-data-agent daemon."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback address without API tokens",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"invalid settings: {RequestRejected.from_errors(exc.errors())}", file=sys.stderr)
        return 2
    try:
        serve(settings, host=args.host, port=args.port, insecure=args.insecure)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
