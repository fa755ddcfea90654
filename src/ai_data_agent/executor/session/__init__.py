"""Sessions: a kernel in its own sandbox, cells one at a time, state kept between them.

A session meets these in order: `session.Session` (``start``: its
requirements through the environment cache, `env.install_env`), `start.start_kernel`
(the sandbox opened as a run's is, through the `provider.SandboxProvider` the
executor is, then the kernel's first frame), and for every call after that
the `wire.SessionWire` (operations out, typed frames in), with
`cells.CellCollector` turning a cell's frames into a `CellResult`.

    from ai_data_agent.executor.session import SandboxProvider, Session
"""

from ai_data_agent.executor.session.provider import SandboxOrder, SandboxProvider
from ai_data_agent.executor.session.session import Session

__all__ = ["SandboxOrder", "SandboxProvider", "Session"]
