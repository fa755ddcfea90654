"""The controller image (images/controller), built once and shared by the tests that start it.

    image = ensure_controller_image(docker_client)   # ai-data-agent/controller:latest

Nothing is pulled: ``images/controller/build.sh`` builds it from the local base
when it is missing or older than the code it holds.
"""

from __future__ import annotations

import re
import subprocess
from datetime import datetime
from pathlib import Path

import docker
import docker.errors

__all__ = ["CONTROLLER_IMAGE", "REPO", "ensure_controller_image"]

CONTROLLER_IMAGE = "ai-data-agent/controller:latest"
REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


def _built_at(image: str, docker_client: docker.DockerClient) -> float | None:
    try:
        created = str(docker_client.images.get(image).attrs["Created"])
    except docker.errors.ImageNotFound:
        return None
    # e.g. 2025-01-01T12:00:00.123456789Z: at most microseconds for fromisoformat
    created = re.sub(r"(\.\d{6})\d*", r"\1", created).replace("Z", "+00:00")
    return datetime.fromisoformat(created).timestamp()


def _code_changed_at() -> float:
    here = REPO / "images/controller"
    sources = [REPO / "pyproject.toml", here / "Dockerfile", here / "build.sh"]
    sources += (REPO / "src/ai_data_agent").rglob("*.py")
    return max(path.stat().st_mtime for path in sources if path.is_file())


def ensure_controller_image(docker_client: docker.DockerClient) -> str:
    """`CONTROLLER_IMAGE`, built by build.sh when missing or older than the code.

    Raises:
        AssertionError: build.sh failed (its output is in the message).
    """
    built_at = _built_at(CONTROLLER_IMAGE, docker_client)
    if built_at is None or built_at < _code_changed_at():
        build = subprocess.run(
            [str(REPO / "images/controller/build.sh"), CONTROLLER_IMAGE],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        assert build.returncode == 0, f"build.sh failed:\n{build.stdout}\n{build.stderr}"
    return CONTROLLER_IMAGE
