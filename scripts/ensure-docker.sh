#!/usr/bin/env bash
# Make a Docker engine reachable, or stop at once saying what to do.
#
# An engine that answers is reused. Where none answers and this machine can
# start one as CI does (root, the local default socket, dockerd installed or
# apt-get to install Debian's docker.io), it does so, saying each step.
# Otherwise it prints what is missing and the commands that fix it (the same
# guidance as `ai-data-agent`'s) and exits 69 (EX_UNAVAILABLE, as the CLI does).
# Idempotent; `.ci/run` and every Makefile target that needs an engine run it first.
# The engine checked is the one ai-data-agent uses: AI_DATA_AGENT_DOCKER_HOST,
# else DOCKER_HOST, else the local socket.
set -euo pipefail

readonly EX_UNAVAILABLE=69
readonly DOCKERD_LOG=/var/log/dockerd.log
log() { printf 'engine: %s\n' "$*" >&2; }

host_var=DOCKER_HOST
if [[ -n ${AI_DATA_AGENT_DOCKER_HOST:-} ]]; then
  export DOCKER_HOST=$AI_DATA_AGENT_DOCKER_HOST
  host_var=AI_DATA_AGENT_DOCKER_HOST
fi
host=${DOCKER_HOST:-}
at=${host:+ at $host}

# Sets `version` when an engine answers, else `reason` (docker's own words).
answers() {
  local out
  if ! command -v docker >/dev/null 2>&1; then
    reason="the docker command is not installed"
    return 1
  fi
  if out=$(timeout 20 docker version --format '{{.Server.Version}}' 2>&1); then
    version=$out
    return 0
  fi
  reason=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tail -n 1 || true)
  reason=${reason:-docker version failed}
  return 1
}

# What is missing ($1), why this script cannot fix it here ($2), and what to do.
# The list below says what NO_ENGINE_HELP in executor/docker_backend.py says, line
# for line (a unit test holds them together).
stop() {
  cat >&2 <<EOF
engine: $1
engine: $2
ai-data-agent runs every sandbox as a container, so it needs a running engine:
  - install Docker Engine (Debian/Ubuntu: sudo apt-get install docker.io) and start it
    (sudo systemctl start docker, or sudo dockerd &);
  - let this user use it: sudo usermod -aG docker \$USER (then log in again), or use
    rootless Docker;
  - for an engine elsewhere, set DOCKER_HOST (or AI_DATA_AGENT_DOCKER_HOST), e.g.
    unix:///run/user/1000/docker.sock or ssh://user@host.
In a clone of ai-data-agent, \`sudo make engine\` installs and starts one as CI does.
EOF
  exit "$EX_UNAVAILABLE"
}

if answers; then
  log "Docker $version answers$at"
  exit 0
fi

case $host in
  "" | unix:///var/run/docker.sock | unix:///run/docker.sock) why_not="" ;;
  *) why_not="$host_var is $host, and this script starts only a local engine" ;;
esac
if [[ -z $why_not && $reason == *"permission denied"* ]]; then
  why_not="an engine runs, but its socket refuses user $(id -un)"
fi
if [[ -z $why_not ]] && ((EUID != 0)); then
  why_not="starting one needs root, and this is $(id -un)"
fi
if [[ -z $why_not ]] && ! command -v dockerd >/dev/null 2>&1 && ! command -v apt-get >/dev/null 2>&1; then
  why_not="dockerd is not installed, and there is no apt-get to install it"
fi
if [[ -n $why_not ]]; then
  stop "no Docker engine answers$at: $reason" "cannot start one here: $why_not"
fi

log "no Docker engine answers ($reason); starting one as CI does (scripts/ensure-docker.sh)"
need=()
{ command -v dockerd && command -v docker; } >/dev/null 2>&1 || need+=(docker.io)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if ((${#need[@]})); then
  log "installing ${need[*]} (apt-get)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    stop "no Docker engine answers: $reason" "cannot start one here: apt-get could not install ${need[*]}"
  fi
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

if pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd runs but does not answer yet; waiting for it"
elif [[ -d /run/systemd/system ]] && systemctl cat docker.service >/dev/null 2>&1; then
  log "starting docker.service (systemctl start docker)"
  systemctl start docker || true # the wait below reports what went wrong
else
  log "starting dockerd in the background (log: $DOCKERD_LOG)"
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
fi

deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  if answers; then
    log "Docker $version answers; engine ready"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not come up within 60 s ($reason); last log lines:"
if [[ -d /run/systemd/system ]] && systemctl cat docker.service >/dev/null 2>&1; then
  journalctl -u docker --no-pager -n 30 >&2 || true
else
  tail -n 30 "$DOCKERD_LOG" >&2 || true
fi
exit "$EX_UNAVAILABLE"
