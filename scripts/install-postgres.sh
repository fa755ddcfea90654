#!/usr/bin/env bash
# Make PostgreSQL's server programs available for the cluster tests (make test-cluster).
#
# The tests start their own throwaway cluster in a temp dir (tests/cluster/postgres.py);
# nothing here starts, stops or configures a PostgreSQL service. Debian's `postgresql`
# package is installed with apt-get when initdb is missing and we are root; elsewhere
# this says what to do and exits 69.
set -euo pipefail

log() { printf 'install-postgres: %s\n' "$*" >&2; }

found() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if found; then
  log "PostgreSQL server programs present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "initdb not found: install PostgreSQL's server (sudo apt-get install postgresql)"
  exit 69
fi
log "installing Debian's postgresql package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package may start a system cluster; the tests never use it.
found || { log "initdb still missing after the install"; exit 69; }
log "installed"
