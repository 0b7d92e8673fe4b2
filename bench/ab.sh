#!/usr/bin/env bash
# A/B: two builds of certbound under the same load (keep-alive, or AB_MODE=hs) AT THE SAME TIME, both pinned to the same core, each
# with its own load generator. Whatever else the (shared) machine does then slows both alike, so the ratio of their
# CPU per request holds steady where back-to-back runs drift by 2x. Absolute figures are not comparable with
# run.sh's (two proxies share a core); only A against B is.
#
# usage: bash bench/ab.sh DIR_A DIR_B      each DIR a certbound checkout with dist/ built (e.g. a `git worktree` of the
#                                          base commit with node_modules symlinked, and this checkout)
# env:   AB_KIND=full|full-rl|full-rlr|intro|plain (default full; AB_KIND_A / AB_KIND_B give each side its own, e.g. the same
#        build with and without rate-limiting: AB_KIND_A=full AB_KIND_B=full-rl bash bench/ab.sh . .)  AB_MODE=ka|hs|rs (hs: a new TLS handshake per request, rs: the same resuming the last session; AB_CONNS then
#        defaults to 8)  AB_ROUNDS=5  AB_SECONDS=6  AB_CONNS=32 (per side)  SUT_CPU=0 RIG_CPU=1
#        AB_NODE_OPTS_A / AB_NODE_OPTS_B: extra node options per side (e.g. "--max-semi-space-size=16")
#        AB_ENV_A / AB_ENV_B: NAME=VALUE ... for one side's environment (e.g. "CERTBOUND_MALLOC=system")
# Prints each round and B's CPU per request relative to A's. Only 127.0.0.1; every load bounded; stops what it
# started by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[[ $# -eq 2 ]] || { echo "usage: bash bench/ab.sh DIR_A DIR_B" >&2; exit 2; }
DIRS=("$(cd "$1" && pwd)" "$(cd "$2" && pwd)")
for d in "${DIRS[@]}"; do [[ -f $d/dist/src/cli.js ]] || { echo "$d: no dist/ (npm run build there)" >&2; exit 2; }; done
KIND=${AB_KIND:-full}
KINDS=("${AB_KIND_A:-$KIND}" "${AB_KIND_B:-$KIND}")
ROUNDS=${AB_ROUNDS:-5}
SECS=${AB_SECONDS:-6}
MODE=${AB_MODE:-ka}
[[ $MODE == ka || $MODE == hs || $MODE == rs ]] || { echo "AB_MODE must be ka, hs or rs" >&2; exit 2; }
CONNS=${AB_CONNS:-$([[ $MODE == ka ]] && echo 32 || echo 8)}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-ab
source "$HERE/lib.sh"
need_tools
install_traps
PORTS=(${AB_PORT_A:-8452} ${AB_PORT_B:-8453}) ADMINS=(${AB_ADMIN_A:-9112} ${AB_ADMIN_B:-9113}) # AB_PORT_A/_B, AB_ADMIN_A/_B: beside another run
log "A/B (${KINDS[0]} / ${KINDS[1]}, mode $MODE, ${ROUNDS}x${SECS}s, $CONNS connections per side, both on cpu$SUT_CPU): A=${DIRS[0]} B=${DIRS[1]} -> $OUTDIR"
make_pki_tokens
start_upstream
args=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt")
if [[ $KIND == plain ]]; then args+=(--check-path /echo --check-contains x-credential-sub=)
else args+=(--token "$JWT/token.jwt" --check-path /echo --check-contains x-credential-sub=client1-service-account); fi
SIDE_PIDS=()
for side in 0 1; do
  label=$([[ $side == 0 ]] && echo A || echo B)
  opts_var=AB_NODE_OPTS_$label
  # shellcheck disable=SC2206
  nodeopts=(${!opts_var:-})
  ROOT=${DIRS[$side]}
  env_var=AB_ENV_$label
  GW_ENV=${!env_var:-} start_certbound "$label" "${KINDS[$side]}" "${PORTS[$side]}" "${ADMINS[$side]}" 0 "$SUT_CPU" "${nodeopts[@]}" || die "$GW_ERR"
  SIDE_PIDS+=("$(gw_pids_csv)")
  STARTED+=("$GW_ROOT") # stopped by PID at exit (lib.sh tracks one gateway at a time)
  GW_ROOT='' GW_TREE=()
done
RATIOS=()
for ((r = 1; r <= ROUNDS; r++)); do
  wait_quiet
  warm=0; ((r == 1)) && warm=2
  lg=()
  for side in 0 1; do
    label=$([[ $side == 0 ]] && echo A || echo B)
    timeout -k 5 $((SECS + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:${PORTS[$side]}/" --mode "$MODE" \
      --connections "$CONNS" --duration "$SECS" --warmup "$warm" --max-seconds $((SECS + 50)) --label "ab-$label" \
      "${args[@]}" --watch "proxy=${SIDE_PIDS[$side]}" >"$OUTDIR/load-$label-$r.json" 2>"$OUTDIR/load-$label-$r.txt" &
    lg+=($!)
  done
  for p in "${lg[@]}"; do wait "$p" || die "load failed (see $OUTDIR/load-*-$r.txt)"; done
  read -r ua ub ra rb < <(node -e 'const f = (s) => JSON.parse(require("fs").readFileSync(`${process.argv[1]}/load-${s}-${process.argv[2]}.json`, "utf8")); const a = f("A"), b = f("B"); console.log(a.cpu.proxy.us_per_req, b.cpu.proxy.us_per_req, a.rps, b.rps)' "$OUTDIR" "$r")
  ratio=$(awk -v a="$ua" -v b="$ub" 'BEGIN { printf "%.3f", b / a }')
  RATIOS+=("$ratio")
  log "round $r: A $ua µs/req ($ra req/s)  B $ub µs/req ($rb req/s)  B/A $ratio"
done
log "B/A CPU per request: ${RATIOS[*]} (median $(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'))"
