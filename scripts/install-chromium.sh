#!/usr/bin/env bash
# Make Debian's Chromium and its WebDriver available for the console's browser tests.
#
# The tests start their own headless Chromium through chromedriver (Selenium) with a
# fresh profile each time; nothing here configures a browser. Debian's `chromium` and
# `chromium-driver` packages are installed with apt-get when chromedriver is missing
# and we are root; elsewhere this says what to do and exits 69.
set -euo pipefail

found() {
  command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1
}

source "$(dirname "$0")/debian-packages.sh"
provide install-chromium "chromium and chromedriver" chromium chromium-driver
