"""Why an install failed, as the agent reads it (executor/diagnose.py)."""

from __future__ import annotations

from ai_data_agent.executor.diagnose import install_error
from ai_data_agent.executor.frames import InstallSection


def test_the_quote_names_paths_as_the_user_knows_them() -> None:
    per_run = InstallSection(
        installer="pip",
        log_tail="Collecting numpy\nERROR: Could not install packages due to an OSError: "
        "[Errno 28] No space left on device: '/tmp/ai_data_agent_k2x9q0ab/numpy/core/x.so'\n",
    )
    cached = InstallSection(
        installer="uv",
        log_tail="error: failed to write to `/opt/ai-data-agent/stage/env/numpy/x.so`: "
        "No space left on device (os error 28)\n",
    )

    assert install_error(per_run, timeout_s=300) == (
        "pip install failed: ERROR: Could not install packages due to an OSError: "
        "[Errno 28] No space left on device: '~/numpy/core/x.so'"
    )
    assert install_error(cached, timeout_s=300) == (
        "uv install failed: error: failed to write to `<environment>/numpy/x.so`: "
        "No space left on device (os error 28)"
    )
