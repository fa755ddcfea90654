"""The exit codes of the ``ai-data-agent`` commands (the README lists them).

    raise typer.Exit(exit_code_for(result))            # run: the program's own, or its outcome's
    raise typer.Exit(CELL_EXIT_CODES[cell.status])     # session run

A run exits with the program's exit code, or the code of an outcome that is not the
program's own (`EXIT_CODES`); a cell with 0, 1 for an exception, or the same codes
as a run for the same outcomes (`CELL_EXIT_CODES`). Refusals and failures have
codes of their own, from sysexits.h where one fits: 2 bad input, 69 no engine,
75 busy or full (try again), 77 the token, 125 infrastructure (`ai_data_agent.cli.common.exit_for`
picks one for an error).
"""

from __future__ import annotations

from ai_data_agent.models import RunResult, RunStatus
from ai_data_agent.session_models import CellStatus

__all__ = [
    "CELL_EXIT_CODES",
    "EXIT_AUTH",
    "EXIT_BUSY",
    "EXIT_CODES",
    "EXIT_INFRASTRUCTURE",
    "EXIT_NO_ENGINE",
    "EXIT_USAGE",
    "exit_code_for",
]

EXIT_USAGE = 2  # bad arguments, a request the server refuses, a daemon that will not start
EXIT_CODES: dict[RunStatus, int] = {
    RunStatus.INSTALL_FAILED: 122,
    RunStatus.OUTPUT_EXCEEDED: 123,
    RunStatus.TIMED_OUT: 124,
    RunStatus.ERROR: 125,  # infrastructure failure (as `docker run` uses 125)
    RunStatus.CANCELLED: 130,
    RunStatus.INTERRUPTED: 130,
    RunStatus.MEMORY_EXCEEDED: 137,
}
EXIT_INFRASTRUCTURE = EXIT_CODES[RunStatus.ERROR]
EXIT_NO_ENGINE = 69  # no Docker engine answers (EX_UNAVAILABLE); nothing was started
EXIT_BUSY = 75  # a busy session, no room, a full queue, no worker (EX_TEMPFAIL): retry
EXIT_AUTH = 77  # the daemon refused the token, or wants one (EX_NOPERM); nothing was started
CELL_EXIT_CODES = {
    CellStatus.SUCCEEDED: 0,
    CellStatus.ERROR: 1,
    CellStatus.OUTPUT_EXCEEDED: 123,
    CellStatus.TIMED_OUT: 124,
    CellStatus.INTERRUPTED: 130,
    CellStatus.KERNEL_DIED: 134,
    CellStatus.MEMORY_EXCEEDED: 137,
}


def exit_code_for(result: RunResult) -> int:
    """The process exit code `run` uses for ``result`` (listed in its help)."""
    if result.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        code = result.exit_code if result.exit_code is not None else 1
        return 128 - code if code < 0 else min(code, 255)  # killed by signal N: 128 + N
    return EXIT_CODES[result.status]
