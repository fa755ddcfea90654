# Sourced by the install-*.sh scripts, which define `found` (the programs are there):
#
#   provide install-chromium "chromium and chromedriver" chromium chromium-driver
#
# exits 0 when `found`, else installs Debian's packages with apt-get when we are root
# and apt-get exists, else says what to do and exits 69 (also when the install did
# not make them found).

provide() {
  local tag=$1 what=$2
  shift 2
  log() { printf '%s: %s\n' "$tag" "$*" >&2; }
  if found; then
    log "$what present"
    exit 0
  fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "$what not found: install them (sudo apt-get install $*)"
    exit 69
  fi
  log "installing Debian's package(s) $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  found || { log "$what still missing after the install"; exit 69; }
  log "installed"
}
