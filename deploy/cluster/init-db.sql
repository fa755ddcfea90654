-- The cluster's database and its two roles, run once by a superuser:
--
--   psql -v api_password="$API_PW" -v worker_password="$WORKER_PW" -f deploy/cluster/init-db.sql
--
-- API nodes connect as ai_data_agent_api, which owns the database and applies
-- the schema migrations at start. Workers connect as ai_data_agent_worker,
-- which the migrations grant only what a worker does: claim and finish runs,
-- append events and artifacts, renew its lease, serve its sessions; it can
-- neither create runs nor delete anything. Passwords are stored as SCRAM
-- verifiers; pg_hba.conf should say `scram-sha-256` (and `hostssl` between
-- machines). The test harness (tests/cluster/postgres.py) runs this file too.

SET password_encryption = 'scram-sha-256';
CREATE ROLE ai_data_agent_api LOGIN PASSWORD :'api_password';
CREATE ROLE ai_data_agent_worker LOGIN PASSWORD :'worker_password';
CREATE DATABASE ai_data_agent OWNER ai_data_agent_api;
REVOKE ALL ON DATABASE ai_data_agent FROM PUBLIC;
GRANT CONNECT ON DATABASE ai_data_agent TO ai_data_agent_worker;
