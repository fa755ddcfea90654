#!/usr/bin/env bash
# Make a Docker engine reachable: reuse a running one, else install Debian's
# docker.io and start dockerd in the background. Idempotent; used by .ci/run.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  log "engine already reachable"
  exit 0
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# A killed dockerd leaves its pid file behind, and the pid can linger as a
# zombie or be reused by an unrelated process: only a live "dockerd" counts.
pidfile=/var/run/docker.pid
if [[ -f $pidfile ]]; then
  pid=$(cat "$pidfile" 2>/dev/null || true)
  comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [[ $comm != dockerd || $state == Z ]]; then
    log "removing stale $pidfile (pid ${pid:-?}: ${comm:-gone} ${state:-})"
    rm -f "$pidfile"
  fi
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "engine ready"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not come up; last log lines:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
