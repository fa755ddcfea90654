# Sourced by scripts/install-*.sh: a Debian package installed with apt-get when a check fails.
#
#   source scripts/apt-install.sh
#   ensure_package TAG PACKAGE CHECK WHAT HINT   # CHECK: a command (function) that succeeds when present
#
# Present: says so. Missing and root with apt-get: installs PACKAGE, checks again.
# Missing elsewhere: says HINT and exits 69 (EX_UNAVAILABLE). Nothing is started.

ensure_package() {
  local tag=$1 package=$2 check=$3 what=$4 hint=$5
  if "$check"; then
    printf '%s: %s present\n' "$tag" "$what" >&2
    return 0
  fi
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    printf '%s: %s not found: %s\n' "$tag" "$what" "$hint" >&2
    exit 69
  fi
  printf "%s: installing Debian's %s package\n" "$tag" "$package" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  "$check" || { printf '%s: %s still missing after the install\n' "$tag" "$what" >&2; exit 69; }
  printf '%s: installed\n' "$tag" >&2
}
