#!/usr/bin/env bash
# CPU profile of certbound under the S5 keep-alive load (PROFILE_MODE=hs: a new TLS handshake per request): `node --cpu-prof` on the gateway (pinned to SUT_CPU),
# the bench load generator (keep-alive, 64 connections, client certificate + bound token) for PROFILE_SECONDS,
# then the top self-time functions and the time per area (src/, plugins/, npm packages, node internals, GC).
# Only the samples taken during the load generator's measured window are counted (start-up and warm-up are not).
# Written for bench/ (the process handling is shared with run.sh through lib.sh).
#
# usage: bash bench/profile.sh
# env:   PROFILE_KIND=full (S5: openid-connect + require-scopes + request-transformer) | intro (S6) | plain (S5p) | dpop (S5d)
#        PROFILE_MODE=ka|hs|rs  PROFILE_SECONDS=10  CONNS_KA=64  CONNS_HS=16  TOP=30  PROFILE_PORT=8451  PROFILE_ADMIN=9111
#        SUT_CPU=0 RIG_CPU=1  BENCH_SETUP=1  BENCH_BUILD=auto  CPU_PROF_INTERVAL=(node's default 1000 µs)
# Output: bench/results/<stamp>-profile/ (the .cpuprofile: open it in Chrome DevTools > Performance, or
# speedscope; top.md: the tables printed here). Only 127.0.0.1; bounded; stops what it started by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=${PROFILE_KIND:-full}
SECS=${PROFILE_SECONDS:-10}
MODE=${PROFILE_MODE:-ka}
[[ $MODE == ka || $MODE == hs || $MODE == rs ]] || { echo "PROFILE_MODE must be ka, hs or rs" >&2; exit 2; }
CONNS=${CONNS_KA:-64}; [[ $MODE != ka ]] && CONNS=${CONNS_HS:-16}
TOP=${TOP:-30}
PPORT=${PROFILE_PORT:-8451}
PADMIN=${PROFILE_ADMIN:-9111}
[[ $KIND == full || $KIND == intro || $KIND == plain || $KIND == dpop ]] || { echo "PROFILE_KIND must be full, intro, plain or dpop" >&2; exit 2; }
if [[ ${BENCH_SETUP:-1} == 1 ]]; then bash "$HERE/setup.sh" >&2; fi
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-profile
source "$HERE/lib.sh"
need_tools
install_traps
for p in $UP_PORT $PPORT $PADMIN; do port_free "$p" || die "port $p on 127.0.0.1 is already in use"; done
[[ $KIND == full || $KIND == dpop ]] && { port_free "$ISS_PORT" || die "port $ISS_PORT on 127.0.0.1 is already in use"; }
[[ $KIND == intro ]] && { port_free "$INTRO_PORT" || die "port $INTRO_PORT on 127.0.0.1 is already in use"; }
PROF=$OUTDIR/cpuprofile
mkdir -p "$PROF"
log "certbound CPU profile ($KIND, mode $MODE, ${CONNS} connections, ${SECS}s) -> $OUTDIR"
ensure_build
make_pki_tokens
start_upstream
nodeopts=(--cpu-prof --cpu-prof-dir="$PROF")
[[ -n ${CPU_PROF_INTERVAL:-} ]] && nodeopts+=(--cpu-prof-interval="$CPU_PROF_INTERVAL")
start_certbound P "$KIND" "$PPORT" "$PADMIN" 0 "$SUT_CPU" "${nodeopts[@]}" || die "$GW_ERR"
PIDS=$(gw_pids_csv)
args=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt")
if [[ $KIND == plain ]]; then args+=(--check-path /echo --check-contains x-credential-sub=)
elif [[ $KIND == dpop ]]; then args+=(--token "$JWT/token-dpop.jwt" --dpop-key "$JWT/dpop-key.pem" --check-path /echo --check-contains x-credential-sub=client1-service-account)
else args+=(--token "$JWT/token.jwt" --check-path /echo --check-contains x-credential-sub=client1-service-account); fi
wait_quiet
timeout -k 5 $((SECS + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:$PPORT/" --mode "$MODE" \
  --connections "$CONNS" --duration "$SECS" --warmup 2 --max-seconds $((SECS + 50)) --label "profile-$KIND" \
  "${args[@]}" --watch "proxy=$PIDS" --watch "upstream=$UP_PIDS" >"$OUTDIR/load.json" 2>"$OUTDIR/load.txt" ||
  { cat "$OUTDIR/load.txt" >&2; die "load failed (see $OUTDIR/load.txt)"; }
log "load: $(tail -1 "$OUTDIR/load.txt" | cut -d: -f2- | cut -c1-220)"
# the measured window, in ms after the gateway was launched (= the profile's start, within a few ms)
window=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const end = Date.parse(r.ts) - Number(process.argv[2]); process.stdout.write(`--from-ms ${Math.round(end - r.duration_s * 1000)} --to-ms ${end}`)' "$OUTDIR/load.json" "$GW_LAUNCH_MS")
stop_gateway # SIGTERM: certbound drains and exits, node writes the profile on exit
for _ in $(seq 50); do compgen -G "$PROF/*.cpuprofile" >/dev/null && break; sleep 0.2; done
compgen -G "$PROF/*.cpuprofile" >/dev/null || die "no .cpuprofile written in $PROF (did certbound exit cleanly on SIGTERM? see $RUN/p.out)"
stop_all
log "profile(s): $(ls "$PROF"/*.cpuprofile | tr '\n' ' ')"
{
  echo "### certbound CPU profile: $KIND chain, mode $MODE ($(case $MODE in ka) echo keep-alive ;; hs) echo 'new TLS handshake per request' ;; *) echo 'resumed TLS handshake per request' ;; esac)), $CONNS connections, ${SECS}s + 2s warm-up, $(date -u +%FT%TZ)"
  echo
  echo "load: $(tail -1 "$OUTDIR/load.txt" | cut -d: -f2-)"
  echo "(only the samples of the load generator's measured window: start-up, warm-up and shutdown are left out)"
  echo
  node "$HERE/cpuprofile-top.mjs" "$PROF" --top "$TOP" --root "$ROOT" $window
} | tee "$OUTDIR/top.md"
echo
echo "profile: $PROF (open in Chrome DevTools > Performance or https://www.speedscope.app); tables: $OUTDIR/top.md"
