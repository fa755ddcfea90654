#!/usr/bin/env bash
# Make gVisor's runsc available to Docker as the runtime "runsc". Idempotent.
#
# 1. installs Debian's runsc package when /usr/bin/runsc is missing;
# 2. merges {"runtimes": {"runsc": {...}}} into /etc/docker/daemon.json,
#    keeping every other key (and any other runtime) as it is;
# 3. asks the running dockerd to reload its configuration with SIGHUP and waits
#    until `docker info` lists runsc.
#
# It never restarts dockerd: runtimes are among the options dockerd reloads on
# SIGHUP, and a restart would break every run in flight on this engine.
# `--network=none` is required here: without it runsc fails to start containers
# on this kernel. It also means a runsc sandbox has no network at all (see
# docs/security.md), so requirements cannot be installed under runsc.
# `--host-uds=open` lets a sandbox connect to (never create) host Unix sockets that
# are bind-mounted into it: the only ones are the egress proxy's, one folder per
# sandbox with an egress allow-list (docs/security.md "Egress").
set -euo pipefail

RUNSC=/usr/bin/runsc
DAEMON_JSON=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}

log() { printf 'setup-gvisor: %s\n' "$*" >&2; }

if [[ ! -x $RUNSC ]]; then
  log "installing Debian's runsc package"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runsc >/dev/null
fi
[[ -x $RUNSC ]] || { log "$RUNSC is still missing after the install"; exit 1; }

if ! docker info >/dev/null 2>&1; then
  log "the Docker engine is not reachable (run scripts/ensure-docker.sh first)"
  exit 1
fi

mkdir -p "$(dirname "$DAEMON_JSON")"
changed=$(python3 - "$DAEMON_JSON" "$RUNSC" <<'PY'
import json, os, sys, tempfile

path, runsc = sys.argv[1], sys.argv[2]
wanted = {"path": runsc, "runtimeArgs": ["--network=none", "--host-uds=open"]}
try:
    with open(path) as fh:
        text = fh.read()
    config = json.loads(text) if text.strip() else {}
except FileNotFoundError:
    config = {}
if not isinstance(config, dict):
    sys.exit(f"{path} does not hold a JSON object; not touching it")
runtimes = config.setdefault("runtimes", {})
if runtimes.get("runsc") == wanted:
    print("no")
    sys.exit(0)
runtimes["runsc"] = wanted
# Write beside the file and rename, so dockerd never reads half a file.
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".daemon.json.")
with os.fdopen(fd, "w") as fh:
    json.dump(config, fh, indent=2, sort_keys=True)
    fh.write("\n")
os.chmod(tmp, 0o644)
os.replace(tmp, path)
print("yes")
PY
)

runtime_listed() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

if [[ $changed == no ]] && runtime_listed; then
  log "runsc already registered"
  exit 0
fi

pid=$(pidof dockerd || true)
if [[ -z $pid ]]; then
  log "dockerd is not running here (remote engine?); add the runsc runtime to its daemon.json yourself"
  exit 1
fi
log "registered runsc in $DAEMON_JSON; reloading dockerd (SIGHUP to pid $pid, no restart)"
kill -HUP $pid

for _ in $(seq 1 60); do
  if runtime_listed; then
    log "runsc is available: docker run --runtime=runsc ..."
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not list runsc after the reload; last log lines:"
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
