#!/usr/bin/env bash
# Install what the certbound benchmark needs (idempotent). Debian bookworm, root (or sudo for apt).
#   apt: nginx 1.22 (upstream, S1, static issuer), HAProxy 2.6 (S2), openssl, curl, util-linux (taskset), procps
#   npm: autocannon, jose, undici (pinned in bench/package-lock.json) into bench/node_modules
#   certbound itself: `npm ci` in the project root when it has no node_modules, `npm run build` when dist/ is missing
# Adapted from ../shared/anchors-bench/setup.sh (certbound reference harness); the njs module is not needed (no S3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
need=()
for c in nginx haproxy openssl curl taskset pgrep; do command -v "$c" >/dev/null || need+=("$c"); done
if ((${#need[@]})); then
  echo "setup: installing Debian packages (missing: ${need[*]})"
  SUDO=; ((EUID == 0)) || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    nginx haproxy openssl curl util-linux procps
fi
if [[ ! -d $HERE/node_modules/autocannon || ! -d $HERE/node_modules/jose || ! -d $HERE/node_modules/undici ]]; then
  echo "setup: npm ci in $HERE"
  (cd "$HERE" && timeout -k 10 600 npm ci --no-audit --no-fund)
fi
if [[ ! -d $ROOT/node_modules ]]; then
  echo "setup: npm ci in $ROOT"
  (cd "$ROOT" && timeout -k 10 600 npm ci --no-audit --no-fund)
fi
if [[ ! -f $ROOT/dist/src/cli.js ]]; then
  echo "setup: npm run build in $ROOT"
  (cd "$ROOT" && npm run build)
fi
echo "setup: ok ($(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), node $(node -v))"
