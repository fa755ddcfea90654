#!/usr/bin/env bash
# Build ai-data-agent/cluster:latest: the controller image plus psycopg, offline.
#
#   deploy/cluster/build.sh [TAG]
#
# Builds the controller image of this checkout first (images/controller/build.sh), so
# both carry the same version.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tag=${1:-ai-data-agent/cluster:latest}
controller=ai-data-agent/controller:latest

log() { printf 'cluster-image: %s\n' "$*" >&2; }

"$root/images/controller/build.sh" "$controller"

# shellcheck source=../../images/wheels.sh
source "$root/images/wheels.sh"
python=$(host_python "$root")
rm -rf "$here/wheelhouse"
mkdir -p "$here/wheelhouse"
image_wheels "$controller" "$here/wheelhouse" "psycopg[binary,pool]>=3.2"
log "building $tag"
docker build --quiet --tag "$tag" --build-arg "BASE_IMAGE=$controller" "$here" >/dev/null
rm -rf "$here/wheelhouse"
log "built $tag"
