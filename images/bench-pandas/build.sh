#!/usr/bin/env bash
# Build ai-data-agent/bench-pandas:latest: the sandbox base image plus pandas,
# offline (wheels fetched on the host, no pull, no index inside the build).
#
#   images/bench-pandas/build.sh [TAG]
#
# Environment:
#   BASE_IMAGE  base for the image; default python:3.12-slim if present, else
#               the local ai-data-agent/base:bookworm (`make images`), which is
#               what the executor resolves to with default settings.
#   PYTHON      host interpreter with pip (default: .venv's, else python3).
#   FORCE=1     rebuild even if an image built from the same base exists.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-ai-data-agent/bench-pandas:latest}

log() { printf 'bench-pandas: %s\n' "$*" >&2; }

base=${BASE_IMAGE:-}
if [[ -z $base ]]; then
  if docker image inspect python:3.12-slim >/dev/null 2>&1; then
    base=python:3.12-slim
  else
    base=ai-data-agent/base:bookworm
  fi
fi
base_id=$(docker image inspect --format '{{.Id}}' "$base" 2>/dev/null) || {
  log "base image $base is not present (run \`make images\`; nothing is pulled here)"
  exit 1
}

# Up to date: built from this very base.
if [[ -z ${FORCE:-} ]]; then
  have=$(docker image inspect --format '{{index .Config.Labels "ai-data-agent.bench.base-id"}}' \
    "$tag" 2>/dev/null || true)
  if [[ $have == "$base_id" ]]; then
    log "$tag is up to date (base $base)"
    exit 0
  fi
fi

# shellcheck source=../wheels.sh
source "$root/images/wheels.sh"
python=$(host_python "$root")

wheelhouse=$here/wheelhouse
rm -rf "$wheelhouse"
mkdir -p "$wheelhouse"
trap 'rm -rf "$wheelhouse"' EXIT
image_wheels "$base" "$wheelhouse" pandas
pandas_version=$(ls "$wheelhouse" | sed -n 's/^pandas-\([^-]*\)-.*/\1/p')

log "building $tag (pandas $pandas_version)"
docker build --quiet --tag "$tag" --build-arg "BASE_IMAGE=$base" \
  --build-arg "BASE_ID=$base_id" --build-arg "PANDAS_VERSION=$pandas_version" \
  --file "$here/Dockerfile" "$here" >/dev/null
log "built $tag from $base"
