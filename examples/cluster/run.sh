#!/usr/bin/env bash
# Starts a Redis and two certbound nodes on loopback, then shows with curl: a token issued at node A works at node
# B; revoked at B, it is refused at A. Needs redis-server, curl, and a built certbound (npm ci && npm run build).
# Ports: REDIS_PORT (6390), A_PORT (8443), B_PORT (8444), A_ADMIN (8001), B_ADMIN (8002). Stops everything on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
certbound=(node "$root/bin/certbound.js")
REDIS_PORT=${REDIS_PORT:-6390}; A_PORT=${A_PORT:-8443}; B_PORT=${B_PORT:-8444}; A_ADMIN=${A_ADMIN:-8001}; B_ADMIN=${B_ADMIN:-8002}
work=$(mktemp -d "${TMPDIR:-/tmp}/certbound-cluster.XXXXXX")
pids=()
cleanup () { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

step () { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "dev PKI and config in $work"
"${certbound[@]}" certs --out "$work/certs" --hosts localhost,127.0.0.1 >/dev/null
cp "$here/gateway.yml" "$work/gateway.yml"

step "redis-server on 127.0.0.1:$REDIS_PORT (no persistence)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export ISSUER="https://localhost:$A_PORT"
export CERTBOUND_STORE_SECRET=${CERTBOUND_STORE_SECRET:-$(head -c 32 /dev/urandom | base64)}
start_node () { # name port admin
  NODE_PORT=$2 ADMIN_PORT=$3 "${certbound[@]}" start -c "$work/gateway.yml" --no-watch >"$work/$1.log" 2>&1 &
  pids+=($!)
}
start_node a "$A_PORT" "$A_ADMIN"
start_node b "$B_PORT" "$B_ADMIN"
for admin in "$A_ADMIN" "$B_ADMIN"; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$admin/status/ready" >/dev/null && break; sleep 0.1; done
  curl -fsS "http://127.0.0.1:$admin/status/ready" >/dev/null || { echo "node on admin port $admin is not ready:"; cat "$work"/*.log; exit 1; }
done
step "node A's /status"
curl -s "http://127.0.0.1:$A_ADMIN/status"; echo

tls () { echo --cacert "$work/certs/ca.crt" --cert "$work/certs/client1.crt" --key "$work/certs/client1.key" --resolve "localhost:$1:127.0.0.1"; }
step "token from node A (client1, mutual-TLS client authentication)"
# shellcheck disable=SC2046
token=$(curl -s $(tls "$A_PORT") -d grant_type=client_credentials -d client_id=client1 "https://localhost:$A_PORT/oauth2/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
echo "${token:0:24}…"

code () { curl -s -o /dev/null -w '%{http_code}' $(tls "$1") -H "authorization: Bearer $token" "https://localhost:$1/api"; }
step "the token at node B"
echo "B: $(code "$B_PORT")"
step "revoke it at node B"
# shellcheck disable=SC2046
curl -s -o /dev/null -w 'revoke at B: %{http_code}\n' $(tls "$B_PORT") -d client_id=client1 --data-urlencode "token=$token" "https://localhost:$B_PORT/oauth2/revoke"
step "node A refuses it (revocations reach every node through Redis pub/sub)"
echo "A: $(code "$A_PORT")"
echo "B: $(code "$B_PORT")"
