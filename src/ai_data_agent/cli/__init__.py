"""The ``ai-data-agent`` command line (the console script is `main`).

Inside, in the order a command meets it:

- ``app``: the `typer` app that gathers the commands, and `main`;
- the commands: ``run`` (code in a fresh sandbox, here or on a daemon),
  ``sessions`` (``session new|run|ls|...`` on a daemon), ``repl`` (a prompt on a
  session, here or on a daemon), ``serve`` (``serve``, ``mcp``, ``worker``),
  ``admin`` (``doctor``, ``cache``, ``sweep``) and ``tenants`` (``tenant``,
  ``token``, ``audit``: on this host's stores or a daemon, through ``tenancy``);
- what they share: ``inputs`` (code, requirements and files from the user's
  side), ``cells`` (a cell run that Ctrl-C interrupts, and its printing),
  ``common`` (consoles, settings, logging, the engine check, the client, failing),
  ``stopping`` (SIGTERM and SIGHUP as Ctrl-C, so that cleanup runs) and
  ``exits`` (every exit code).
"""

from ai_data_agent.cli.app import app, main

__all__ = ["app", "main"]
