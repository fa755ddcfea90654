# Sourced by the image build scripts: download wheels that fit an image's
# interpreter and C library (not the host's), so `docker build` needs no index.
#
#   source images/wheels.sh
#   python=$(host_python "$root")        # $PYTHON, else the project's .venv, else python3
#   image_wheels BASE_IMAGE WHEELHOUSE REQUIREMENT...
#
# image_wheels uses $python and the caller's `log` function.

host_python() {
  if [[ -n ${PYTHON:-} ]]; then
    printf '%s\n' "$PYTHON"
  elif [[ -x $1/.venv/bin/python ]]; then
    printf '%s\n' "$1/.venv/bin/python"
  else
    printf 'python3\n'
  fi
}

image_wheels() {
  local base=$1 wheelhouse=$2
  shift 2
  local pyver glibc arch minor v
  read -r pyver glibc arch < <(
    docker run --rm --network none --entrypoint python3 "$base" -c \
      'import platform, sys; print("%d.%d" % sys.version_info[:2], platform.libc_ver()[1], platform.machine())'
  )
  local platforms=(--platform "manylinux2014_$arch" --platform "manylinux1_$arch")
  minor=${glibc#*.}
  for ((v = 17; v <= minor; v++)); do platforms+=(--platform "manylinux_2_${v}_$arch"); done
  log "wheels for CPython $pyver, glibc $glibc, $arch (base $base)"
  "$python" -m pip download --quiet --disable-pip-version-check --dest "$wheelhouse" \
    --only-binary=:all: --python-version "$pyver" --implementation cp "${platforms[@]}" "$@"
}
