#!/usr/bin/env bash
# Installs the Debian packages the test suite needs that npm cannot bring, when any is missing.
# Called by `npm test` (pretest) and .ci/run. One list, one apt-get run; does nothing when all are present.
set -euo pipefail
# command → Debian package
declare -A pkgs=(
  [curl]=curl
  [openssl]=openssl
  [redis-server]=redis-server
  [chromium]=chromium
  [stdbuf]=coreutils
)
need=()
for cmd in "${!pkgs[@]}"; do command -v "$cmd" >/dev/null 2>&1 || need+=("${pkgs[$cmd]}"); done
# a library, not a command: bin/with-jemalloc.sh preloads it; test/e2e/launch.test.ts checks that it does
ls /usr/lib/*-linux-gnu/libjemalloc.so.2 >/dev/null 2>&1 || need+=(libjemalloc2)
((${#need[@]})) || exit 0
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]} and not root: install them (apt-get install ${need[*]})" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "system-deps: installing ${need[*]}" >&2
$SUDO apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends ca-certificates "${need[@]}" >&2
