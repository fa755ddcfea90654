#!/usr/bin/env bash
# Make Debian's Chromium and its WebDriver available for the console's browser tests.
#
# The tests start their own headless Chromium through chromedriver (Selenium) with a
# fresh profile each time; nothing here configures a browser. Debian's `chromium` and
# `chromium-driver` packages are installed with apt-get when chromedriver is missing
# and we are root; elsewhere this says what to do and exits 69.
set -euo pipefail

log() { printf 'install-chromium: %s\n' "$*" >&2; }

found() {
  command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1
}

if found; then
  log "chromium and chromedriver present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "chromium or chromedriver not found: install them (sudo apt-get install chromium chromium-driver)"
  exit 69
fi
log "installing Debian's chromium and chromium-driver packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
found || { log "chromedriver still missing after the install"; exit 69; }
log "installed"
