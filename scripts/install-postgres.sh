#!/usr/bin/env bash
# Make PostgreSQL's server programs available for the cluster tests (make test-cluster).
#
# The tests start their own throwaway cluster in a temp dir (tests/cluster/postgres.py);
# nothing here starts, stops or configures a PostgreSQL service (the package may start
# a system cluster; the tests never use it). Debian's `postgresql` package is installed
# with apt-get when initdb is missing and we are root; elsewhere this says what to do
# and exits 69.
set -euo pipefail

found() {
  command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

source "$(dirname "$0")/debian-packages.sh"
provide install-postgres "PostgreSQL's server programs (initdb)" postgresql
