"""The Docker engine behind the `backend.Backend` seam: the only code that touches docker-py.

A request meets it in this order: `backend.DockerBackend` resolves the image
and starts a container (`DockerBackend.start`), whose attach socket is a
`sandbox.DockerSandbox` (stdin out, multiplexed stdout and stderr in, kill,
exit state, removal); `volumes` makes the named volumes sandboxes write (the
environment cache, staging) and `sweep` removes what crashed controllers left
behind. Every docker-py and requests exception is translated here into
`ExecutorError` (`DockerUnavailable` when the engine cannot be reached).

    from ai_data_agent.executor.docker import DockerBackend, connect
"""

from ai_data_agent.executor.docker.backend import NO_ENGINE_HELP, DockerBackend, connect

__all__ = ["NO_ENGINE_HELP", "DockerBackend", "connect"]
