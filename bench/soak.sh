#!/usr/bin/env bash
# RSS soak of issue 5 (`npm run soak:rss`): certbound with the full chain under keep-alive load for SOAK_SECONDS,
# the RSS of every gateway process sampled every SOAK_INTERVAL seconds, a table, and the verdict:
#   every process < 150 MB at every sample, and flat after warm-up: growth between the SOAK_WARMUP mark
#   (default 60 s) and the end < 10 %.
# Written for bench/ (process handling shared with run.sh through lib.sh).
#
# usage: bash bench/soak.sh                      (5 minutes of load, ~5.5 minutes in all)
# env:   SOAK_SECONDS=300  SOAK_INTERVAL=5  SOAK_WARMUP=60  SOAK_KIND=full|intro|plain  SOAK_WORKERS=0 (N: gateway.workers)
#        CONNS_KA=64  RSS_LIMIT_MB=150  GROWTH_LIMIT_PCT=10  SOAK_PORT=8452 SOAK_ADMIN=9112  SUT_CPU=0 RIG_CPU=1
#        BENCH_SETUP=1  BENCH_BUILD=auto
# Output: bench/results/<stamp>-soak/ (soak.tsv, verdict.txt, load.json). Only 127.0.0.1; the load is bounded by
# --max-seconds and timeout(1); every process started is stopped by its PID. Exit 1 if the verdict fails.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_INTERVAL=${SOAK_INTERVAL:-5}
SOAK_WARMUP=${SOAK_WARMUP:-60}
KIND=${SOAK_KIND:-full}
WORKERS=${SOAK_WORKERS:-0}
CONNS=${CONNS_KA:-64}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-150}
GROWTH_LIMIT_PCT=${GROWTH_LIMIT_PCT:-10}
SPORT=${SOAK_PORT:-8452}
SADMIN=${SOAK_ADMIN:-9112}
((SOAK_SECONDS >= 10 && SOAK_SECONDS <= 3600)) || { echo "SOAK_SECONDS must be 10..3600" >&2; exit 2; }
((SOAK_WARMUP * 2 <= SOAK_SECONDS)) || SOAK_WARMUP=$((SOAK_SECONDS / 2))
if [[ ${BENCH_SETUP:-1} == 1 ]]; then bash "$HERE/setup.sh" >&2; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-soak
source "$HERE/lib.sh"
need_tools
install_traps
for p in $UP_PORT $SPORT $SADMIN; do port_free "$p" || die "port $p on 127.0.0.1 is already in use"; done
log "certbound RSS soak ($KIND chain, workers $WORKERS, keep-alive $CONNS connections, ${SOAK_SECONDS}s, sample every ${SOAK_INTERVAL}s, warm-up mark ${SOAK_WARMUP}s) -> $OUTDIR"
ensure_build
make_pki_tokens
start_upstream
cpus=$SUT_CPU; ((WORKERS > 0)) && cpus="0-$((NCPU - 1))"
start_certbound SOAK "$KIND" "$SPORT" "$SADMIN" "$WORKERS" "$cpus" || die "$GW_ERR"
PIDS=$(gw_pids_csv)
args=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt")
if [[ $KIND == plain ]]; then args+=(--check-path /echo --check-contains x-credential-sub=)
else args+=(--token "$JWT/token.jwt" --check-path /echo --check-contains x-credential-sub=client1-service-account); fi

requests_total() { # sum of certbound_http_requests_total on the admin listener (all routes, statuses; workers aggregated)
  curl -sS --max-time 2 "http://127.0.0.1:$SADMIN/metrics" 2>/dev/null | awk '/^certbound_http_requests_total[{ ]/{s+=$NF} END{printf "%d", s}'
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

taskset -c "$RIG_CPU" timeout -k 5 $((SOAK_SECONDS + 70)) node "$HERE/loadgen.mjs" --url "https://127.0.0.1:$SPORT/" --mode ka \
  --connections "$CONNS" --duration "$SOAK_SECONDS" --max-seconds $((SOAK_SECONDS + 60)) --label "soak-$KIND" \
  "${args[@]}" --watch "proxy=$PIDS" >"$OUTDIR/load.json" 2>"$OUTDIR/load.txt" &
LOAD_PID=$!; STARTED+=("$LOAD_PID")

TSV=$OUTDIR/soak.tsv
printf 't_s\treq_s' >"$TSV"
for p in ${PIDS//,/ }; do printf '\trss_mb_%s' "$p" >>"$TSV"; done
echo >>"$TSV"
# wait for the preflight to pass and the load to start (the gateway's request counter moves)
r0=$(requests_total); t_wait=$SECONDS
while kill -0 "$LOAD_PID" 2>/dev/null && (($(requests_total) - r0 < 100)) && ((SECONDS - t_wait < 30)); do sleep 0.2; done
kill -0 "$LOAD_PID" 2>/dev/null || { cat "$OUTDIR/load.txt" >&2; die "the load generator exited before the soak started (see $OUTDIR/load.txt)"; }
t0=$(date +%s.%N); prev=$(requests_total); tprev=$t0
log "load running (loadgen pid $LOAD_PID); sampling RSS of pid(s) $PIDS"
printf '%6s %8s' "t (s)" "req/s" >&2; for p in ${PIDS//,/ }; do printf ' %12s' "pid $p MB" >&2; done; echo >&2
n=0
while :; do
  n=$((n + 1))
  target=$(awk -v t0="$t0" -v n="$n" -v i="$SOAK_INTERVAL" 'BEGIN{printf "%.3f", t0 + n * i}')
  now=$(date +%s.%N)
  sl=$(awk -v a="$target" -v b="$now" 'BEGIN{d = a - b; if (d < 0) d = 0; printf "%.3f", d}')
  sleep "$sl"
  kill -0 "$LOAD_PID" 2>/dev/null || break
  el=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN{printf "%.0f", now - t0}')
  ((el > SOAK_SECONDS)) && break
  cur=$(requests_total); tnow=$(date +%s.%N)
  rps=$(awk -v a="$prev" -v b="$cur" -v t1="$tprev" -v t2="$tnow" 'BEGIN{d = t2 - t1; if (d <= 0) d = 1; printf "%d", (b - a) / d}')
  prev=$cur; tprev=$tnow
  line="$el"$'\t'"$rps"; printf '%6s %8s' "$el" "$rps" >&2
  for p in ${PIDS//,/ }; do
    v=$(awk -v k="$(rss_kb "$p")" 'BEGIN{printf "%.1f", k / 1024}')
    line+=$'\t'"$v"; printf ' %12s' "$v" >&2
  done
  echo "$line" >>"$TSV"; echo >&2
done
wait "$LOAD_PID" 2>/dev/null || log "load generator exited non-zero: $(tail -2 "$OUTDIR/load.txt" | tr '\n' ' ' | cut -c1-300)"
forget_pid "$LOAD_PID"
log "load: $(tail -1 "$OUTDIR/load.txt" | cut -d: -f2- | cut -c1-240)"
stop_all

set +e
node - "$TSV" "$SOAK_WARMUP" "$RSS_LIMIT_MB" "$GROWTH_LIMIT_PCT" "$SOAK_SECONDS" <<'NODE' | tee "$OUTDIR/verdict.txt"
const fs = require('node:fs')
const [file, warm, limit, growthLimit, secs] = process.argv.slice(2).map((x, i) => (i === 0 ? x : Number(x)))
const lines = fs.readFileSync(file, 'utf8').trim().split('\n')
const head = lines[0].split('\t'); const rows = lines.slice(1).map((l) => l.split('\t').map(Number))
if (rows.length < 3) { console.log('VERDICT: FAIL - fewer than 3 samples (see load.txt)'); process.exit(1) }
let ok = true; const out = []
const last = rows[rows.length - 1]
if (last[0] < secs - 10) { ok = false; out.push(`the load stopped early: last sample at ${last[0]} s of ${secs} s`) }
for (let c = 2; c < head.length; c++) {
  const pid = head[c].replace('rss_mb_', '')
  const vals = rows.map((r) => r[c])
  const max = Math.max(...vals)
  const atWarm = rows.reduce((best, r) => (Math.abs(r[0] - warm) < Math.abs(best[0] - warm) ? r : best))[c]
  const end = last[c]
  const growth = atWarm > 0 ? ((end - atWarm) / atWarm) * 100 : NaN
  const pOk = max < limit && growth < growthLimit
  if (!pOk) ok = false
  out.push(`pid ${pid}: max ${max.toFixed(1)} MB (limit ${limit}), at ${warm} s ${atWarm.toFixed(1)} MB, at end (${last[0]} s) ${end.toFixed(1)} MB, growth ${growth.toFixed(1)} % (limit ${growthLimit} %): ${pOk ? 'ok' : 'FAIL'}`)
}
const rps = rows.map((r) => r[1]).filter((x) => x > 0)
out.push(`gateway throughput during the soak: ${Math.min(...rps)}–${Math.max(...rps)} req/s per ${rows[1][0] - rows[0][0]} s sample (median ${rps.sort((a, b) => a - b)[rps.length >> 1]})`)
console.log(out.join('\n'))
console.log(`VERDICT: ${ok ? 'PASS' : 'FAIL'} (every process < ${limit} MB, growth from the ${warm} s mark to the end < ${growthLimit} %)`)
process.exit(ok ? 0 : 1)
NODE
rc=${PIPESTATUS[0]}
set -e
echo "results: $OUTDIR (soak.tsv, verdict.txt, load.json, run/)"
exit "$rc"
