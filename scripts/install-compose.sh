#!/usr/bin/env bash
# Make a compose command available for the compose deployment's test and `make compose-up`.
#
# `docker compose` (the plugin) or `docker-compose` (v1) will do; with neither,
# Debian's `docker-compose` package is installed with apt-get when we are root;
# elsewhere this says what to do and exits 69. Nothing is started here.
set -euo pipefail

found() {
  docker-compose version >/dev/null 2>&1 || docker compose version >/dev/null 2>&1
}

source "$(dirname "$0")/debian-packages.sh"
provide install-compose "docker-compose (or docker compose)" docker-compose
