#!/usr/bin/env bash
# Make a compose command available for the compose deployment's test and `make compose-up`.
#
# `docker compose` (the plugin) or `docker-compose` (v1) will do; with neither,
# Debian's `docker-compose` package is installed with apt-get when we are root;
# elsewhere this says what to do and exits 69. Nothing is started here.
set -euo pipefail

log() { printf 'install-compose: %s\n' "$*" >&2; }

found() {
  docker-compose version >/dev/null 2>&1 || docker compose version >/dev/null 2>&1
}

if found; then
  log "compose present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "neither docker-compose nor docker compose found: install one (sudo apt-get install docker-compose)"
  exit 69
fi
log "installing Debian's docker-compose package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
found || { log "docker-compose still missing after the install"; exit 69; }
log "installed"
