#!/usr/bin/env bash
# Build the controller image offline: wheels on the host, then `docker build`
# from this directory, with no pull and no index reached inside the build.
#
#   images/controller/build.sh [TAG]        # default ai-data-agent/controller:latest
#
# Environment:
#   BASE_IMAGE  base for the image; default python:3.12-slim if present, else the
#               local ai-data-agent/base:bookworm (built with images/base/build.sh
#               if missing), as `make images` chooses.
#   DOCKER_GID  optional: bake the socket's group into the image (else group_add).
#   PYTHON      host interpreter with pip for the wheelhouse (default: .venv's, else python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-ai-data-agent/controller:latest}
fallback=${FALLBACK_IMAGE:-ai-data-agent/base:bookworm}

log() { printf 'controller-image: %s\n' "$*" >&2; }

base=${BASE_IMAGE:-}
if [[ -z $base ]]; then
  if docker image inspect python:3.12-slim >/dev/null 2>&1; then
    base=python:3.12-slim
  else
    "$root/images/base/build.sh" "$fallback"
    base=$fallback
  fi
fi
docker image inspect "$base" >/dev/null 2>&1 || {
  log "base image $base is not present (nothing is pulled here)"
  exit 1
}

# shellcheck source=../wheels.sh
source "$root/images/wheels.sh"
python=$(host_python "$root")

wheelhouse=$here/wheelhouse
rm -rf "$wheelhouse"
mkdir -p "$wheelhouse"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheelhouse" "$root"
# With the mcp extra: the daemon serves /mcp (docs/mcp.md).
image_wheels "$base" "$wheelhouse" "$(ls "$wheelhouse"/ai_data_agent-*.whl)[mcp]"

log "building $tag"
docker build --quiet --tag "$tag" --build-arg "BASE_IMAGE=$base" \
  ${DOCKER_GID:+--build-arg "DOCKER_GID=$DOCKER_GID"} \
  --file "$here/Dockerfile" "$here" >/dev/null
log "built $tag from $base"
