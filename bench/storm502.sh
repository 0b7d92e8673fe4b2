#!/usr/bin/env bash
# Memory under a storm of fast 502s (issue 20; the faults soak peaked at 205 MB RSS while its upstream was down):
# certbound (mTLS proxy, no plugin; STORM_KIND=full for the S5 chain) in front of an upstream port where nothing
# listens, loaded with keep-alive requests that all answer 502 (connection refused, after the service's retries),
# for STORM_SECONDS. Every second it samples the gateway's RSS (/proc) and its V8 heap and external memory (the
# admin listener's /metrics), then keeps sampling STORM_AFTER seconds after the load stopped.
# Prints the samples and a verdict: PASS if RSS stayed under RSS_LIMIT_MB (150) throughout.
#
# Since the connect-failure hold (services[].connect_failure_hold, default 1000 ms) a refused connection makes the
# gateway answer 502 at once for the hold: BENCH_CONNECT_HOLD=0 measures the old behaviour (every request connects,
# retries + 1 times).
#
# usage: bash bench/storm502.sh      env: BENCH_RETRIES=N (the service's retries; default: certbound's 5) BENCH_CONNECT_HOLD=MS STORM_SECONDS=20 STORM_AFTER=5 STORM_CONNS=64 STORM_KIND=plain|full
#        STORM_NODE_OPTS="..." (node options for the gateway)  STORM_PORT=8455 STORM_ADMIN=9115 RSS_LIMIT_MB=150
# Only 127.0.0.1; the load is bounded in time; every process is stopped by its PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-storm502
source "$HERE/lib.sh"
need_tools
install_traps
SECS=${STORM_SECONDS:-20}
AFTER=${STORM_AFTER:-5}
CONNS=${STORM_CONNS:-64}
KIND=${STORM_KIND:-plain}
PORT=${STORM_PORT:-8455}
ADMIN=${STORM_ADMIN:-9115}
LIMIT=${RSS_LIMIT_MB:-150}
# nothing listens on the upstream port: every request fails to connect (ECONNREFUSED), as in the soak's outage
UP_PORT=${STORM_UP_PORT:-9101}
port_free "$UP_PORT" || die "port $UP_PORT is in use: the storm needs an upstream port where nothing listens (STORM_UP_PORT)"
ensure_build
make_pki_tokens
# shellcheck disable=SC2206
nodeopts=(${STORM_NODE_OPTS:-})
start_certbound STORM "$KIND" "$PORT" "$ADMIN" 0 "$SUT_CPU" ${nodeopts[@]+"${nodeopts[@]}"} || die "$GW_ERR"
GW=$GW_ROOT
TSV=$OUTDIR/storm.tsv
printf 't_s\tphase\trss_mb\theap_used_mb\theap_total_mb\texternal_mb\tresponses_502\n' >"$TSV"
sample() { # T PHASE
  local rss m
  rss=$(awk '/^VmRSS:/{printf "%.1f", $2/1024}' "/proc/$GW/status" 2>/dev/null || echo NaN)
  m=$(curl -sS --max-time 5 "http://127.0.0.1:$ADMIN/metrics" 2>>"$OUTDIR/metrics-errors.txt" || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rss" \
    "$(awk '/^certbound_nodejs_heap_size_used_bytes /{printf "%.1f", $2/1048576}' <<<"$m")" \
    "$(awk '/^certbound_nodejs_heap_size_total_bytes /{printf "%.1f", $2/1048576}' <<<"$m")" \
    "$(awk '/^certbound_nodejs_external_memory_bytes /{printf "%.1f", $2/1048576}' <<<"$m")" \
    "$(awk '/^certbound_http_requests_total\{.*status="502"/{s+=$NF} END{printf "%d", s}' <<<"$m")" >>"$TSV"
}
args=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt" --expect 502)
[[ $KIND == full ]] && args+=(--token "$JWT/token.jwt")
sample 0 idle
log "storm: $CONNS keep-alive connections for ${SECS}s against certbound ($KIND) whose upstream 127.0.0.1:$UP_PORT refuses connections"
timeout -k 5 $((SECS + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:$PORT/" --mode ka \
  --connections "$CONNS" --duration "$SECS" --max-seconds $((SECS + 50)) --label storm502 "${args[@]}" --watch "proxy=$GW" \
  >"$OUTDIR/load.json" 2>"$OUTDIR/load.txt" &
LG=$!
t=0
while kill -0 "$LG" 2>/dev/null; do sleep 1; t=$((t + 1)); sample "$t" load; done
wait "$LG" || die "load generator failed: $(tail -2 "$OUTDIR/load.txt")"
for ((i = 1; i <= AFTER; i++)); do sleep 1; t=$((t + 1)); sample "$t" after; done
column -t "$TSV"
tail -1 "$OUTDIR/load.txt"
peak=$(awk -F'\t' 'NR > 1 && $3 > p { p = $3 } END { print p + 0 }' "$TSV")
heap=$(awk -F'\t' 'NR > 1 && $4 > p { p = $4 } END { print p + 0 }' "$TSV")
verdict=PASS; awk -v p="$peak" -v l="$LIMIT" 'BEGIN { exit !(p >= l) }' && verdict=FAIL
echo "peak RSS ${peak} MB, peak heap used ${heap} MB (limit ${LIMIT} MB RSS): $verdict" | tee "$OUTDIR/verdict.txt"
echo "results: $OUTDIR"
