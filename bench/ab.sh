#!/usr/bin/env bash
# A/B: two builds of certbound under the same keep-alive load, in interleaved runs (A B A B ...), so that a change's
# effect on CPU per request is not lost in the drift between runs on a shared machine.
#
# usage: bash bench/ab.sh DIR_A DIR_B      each DIR a certbound checkout with dist/ built (e.g. a `git worktree` of the
#                                          base commit with node_modules symlinked, and this checkout)
# env:   AB_KIND=full|intro|plain (default full)  AB_ROUNDS=3  AB_SECONDS=8  CONNS_KA=64  SUT_CPU=0 RIG_CPU=1
#        AB_NODE_OPTS_A / AB_NODE_OPTS_B: extra node options per side (e.g. "--max-semi-space-size=16")
# Prints each run and the median µs/req per side. Only 127.0.0.1; every load bounded; stops what it started by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[[ $# -eq 2 ]] || { echo "usage: bash bench/ab.sh DIR_A DIR_B" >&2; exit 2; }
DIRS=("$(cd "$1" && pwd)" "$(cd "$2" && pwd)")
for d in "${DIRS[@]}"; do [[ -f $d/dist/src/cli.js ]] || { echo "$d: no dist/ (npm run build there)" >&2; exit 2; }; done
KIND=${AB_KIND:-full}
ROUNDS=${AB_ROUNDS:-3}
SECS=${AB_SECONDS:-8}
CONNS=${CONNS_KA:-64}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-ab
source "$HERE/lib.sh"
need_tools
install_traps
APORT=8452 AADMIN=9112
log "A/B ($KIND, ${ROUNDS}x${SECS}s, $CONNS connections): A=${DIRS[0]} B=${DIRS[1]} -> $OUTDIR"
make_pki_tokens
start_upstream
args=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt")
if [[ $KIND == plain ]]; then args+=(--check-path /echo --check-contains x-credential-sub=)
else args+=(--token "$JWT/token.jwt" --check-path /echo --check-contains x-credential-sub=client1-service-account); fi
declare -a RES_A=() RES_B=()
for ((r = 1; r <= ROUNDS; r++)); do
  for side in 0 1; do
    label=$([[ $side == 0 ]] && echo A || echo B)
    opts_var=AB_NODE_OPTS_$label
    # shellcheck disable=SC2206
    nodeopts=(${!opts_var:-})
    ROOT=${DIRS[$side]}
    start_certbound "$label" "$KIND" "$APORT" "$AADMIN" 0 "$SUT_CPU" "${nodeopts[@]}" || die "$GW_ERR"
    wait_quiet
    timeout -k 5 $((SECS + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:$APORT/" --mode ka \
      --connections "$CONNS" --duration "$SECS" --warmup 2 --max-seconds $((SECS + 50)) --label "ab-$label" \
      "${args[@]}" --watch "proxy=$(gw_pids_csv)" >"$OUTDIR/load-$label-$r.json" 2>"$OUTDIR/load-$label-$r.txt" ||
      { cat "$OUTDIR/load-$label-$r.txt" >&2; die "load failed"; }
    us=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write(String(r.cpu.proxy.us_per_req))' "$OUTDIR/load-$label-$r.json" 2>/dev/null || echo '?')
    log "round $r $label: $(tail -1 "$OUTDIR/load-$label-$r.txt" | cut -d: -f2- | cut -c1-160)"
    if [[ $side == 0 ]]; then RES_A+=("$us"); else RES_B+=("$us"); fi
    stop_gateway # the static issuer / introspection endpoint stay up for the next run
  done
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
log "A: ${RES_A[*]} µs/req (median $(med "${RES_A[@]}"))   B: ${RES_B[*]} µs/req (median $(med "${RES_B[@]}"))"
