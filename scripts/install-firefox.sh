#!/usr/bin/env bash
# Make Debian's Firefox ESR available for the console's Firefox test.
#
# The test starts its own headless firefox-esr with a fresh profile and drives it over
# WebDriver BiDi, which Firefox speaks itself: no geckodriver is needed. Debian's
# `firefox-esr` package is installed with apt-get when it is missing and we are root;
# elsewhere this says what to do and exits 69.
set -euo pipefail

found() {
  command -v firefox-esr >/dev/null 2>&1
}

source "$(dirname "$0")/debian-packages.sh"
provide install-firefox "firefox-esr" firefox-esr
