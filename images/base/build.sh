#!/usr/bin/env bash
# Build the offline sandbox base image from Debian packages, for machines that
# cannot pull python:3.12-slim. Usage: images/base/build.sh [TAG]
# The result is an unmodified-enough stand-in: Debian bookworm, python3 (3.11)
# with pip, a `python` link, no extra users; the controller needs nothing else.
set -euo pipefail

tag=${1:-ai-data-agent/base:bookworm}
suite=${DEBIAN_SUITE:-bookworm}

# Check everything the build needs before the minute of debootstrap: no engine
# is not "cannot pull", and a build that cannot finish must not start.
if ! err=$(docker version --format '{{.Server.Version}}' 2>&1 >/dev/null); then
  echo "images: cannot build $tag: no Docker engine answers (${err:-docker version failed});" \
    "\`make engine\` starts one or says what to do" >&2
  exit 69 # EX_UNAVAILABLE, as scripts/ensure-docker.sh and the CLI use
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "images: $tag already present"
  exit 0
fi

if ((EUID != 0)); then
  echo "images: building $tag needs root (debootstrap); run: sudo make images," \
    "or load an image with python3 >= 3.9 (docker load) and set AI_DATA_AGENT_SANDBOX_IMAGE" >&2
  exit 1
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "images: building $tag needs debootstrap, and there is no apt-get to install it" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/ai-data-agent-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

echo "images: debootstrap $suite into $root (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,ca-certificates \
  "$suite" "$root" >"$root.log" 2>&1 || { tail -n 40 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"

ln -sf python3 "$root/usr/bin/python"
# As in the official python images: pip may install into targets without the
# PEP 668 guard (the sandbox only ever installs with --target).
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$tag" >/dev/null
echo "images: built $tag"
