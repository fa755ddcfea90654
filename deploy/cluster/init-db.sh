#!/usr/bin/env bash
# Run by the postgres container at its first start (/docker-entrypoint-initdb.d):
# the database and the two roles of deploy/cluster/init-db.sql, with the passwords
# from the compose secrets.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v api_password="$(cat /run/secrets/db_api_password)" \
  -v worker_password="$(cat /run/secrets/db_worker_password)" \
  -f /docker-entrypoint-initdb.d/init-db.sql.in
