#!/usr/bin/env bash
# Multi-core mode of the benchmark (`MULTICORE=1 npm run bench`, or `bash bench/multicore.sh`): certbound's full
# chain with `gateway.workers: N` beside HAProxy doing the same chain with `nbthread N` + `cpu-map`, both on the
# same N proxy cores (0..N-1), the load generators on cores of their own, the upstream and the static issuer on the
# last core. Reports req/s, proxy CPU µs/req and, for certbound, the requests and CPU of every worker process
# (from the access log's pid field and /proc): how evenly the listening socket spreads connections.
# Adapted from ../shared/anchors-bench/device/run.sh (the reference 16-core script).
#
# usage: bash bench/multicore.sh
# env:   MC_NS="1 2 4 8"   proxy core counts to try; those that do not leave a load-generator core and an
#                          upstream core are skipped with a message (on 2 cores only N=1 runs)
#        MC_MODES="ka hs"  MC_ROUNDS=1  DUR_KA=8  DUR_HS=5  CONNS_KA=64 (per N)  CONNS_HS=16 (per N)
#        MC_SCHED="none"   certbound's cluster scheduling: none (the kernel: shared listening socket, the default)
#                          and/or rr (node:cluster round-robin: the primary accepts and hands connections over)
#        MC_DIST=1         on a machine too small for N=2 proxy cores plus load generators: still run workers: 2
#                          unpinned beside the load generator, only to see how connections spread (no ratio)
# N=1 is certbound as one process (workers: 0) against nbthread 1: what gateway.workers adds is seen from N=2 on.
# Only 127.0.0.1; every load run bounded; every process stopped by its PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)-multicore
source "$HERE/lib.sh"
need_tools
install_traps
MC_NS=${MC_NS:-"1 2 4 8"}
MC_MODES=${MC_MODES:-"ka hs"}
MC_ROUNDS=${MC_ROUNDS:-1}
MC_SCHED=${MC_SCHED:-none}
MC_DIST=${MC_DIST:-1}
DUR_KA=${DUR_KA:-8}
DUR_HS=${DUR_HS:-5}
CONNS_KA=${CONNS_KA:-64}
CONNS_HS=${CONNS_HS:-16}
PORT=${MC_PORT:-8454} ADMIN=${MC_ADMIN:-9114}
port_free "$PORT" && port_free "$ADMIN" || die "port $PORT or $ADMIN on 127.0.0.1 is in use: set MC_PORT / MC_ADMIN"
RESULTS=$OUTDIR/multicore.jsonl
LAST=$((NCPU - 1))
UP_CORE=$LAST
log "multi-core bench -> $OUTDIR  ($NCPU cores; N in $MC_NS; modes $MC_MODES; certbound scheduling $MC_SCHED; ${MC_ROUNDS} round(s))"
ensure_build
make_pki_tokens
RIG_CPU=$UP_CORE start_upstream
RIG_CPU=$UP_CORE start_issuer || die "$GW_ERR"

# load generator cores for N proxy cores: those between the proxy cores and the upstream core, at most N
# (one keep-alive autocannon drives about one proxy core of HAProxy); with no such core (2 cores), the load
# generator shares the upstream's core, as in run.sh
lg_cores() { local n=$1 c out=(); for ((c = n; c < LAST && ${#out[@]} < n; c++)); do out+=("$c"); done; ((${#out[@]})) || out=("$LAST"); echo "${out[*]}"; }

start_haproxy() { # N -> PROXY_PID
  local n=$1
  render "$HERE/conf/s2-haproxy.cfg" "$RUN/mc-s2.cfg" "$PORT"
  sed -i -e "s/^    nbthread 1$/    nbthread $n\n    cpu-map auto:1\/1-$n 0-$((n - 1))/" "$RUN/mc-s2.cfg"
  haproxy -c -q -f "$RUN/mc-s2.cfg" >>"$LOG" 2>&1 || die "haproxy config check failed ($RUN/mc-s2.cfg)"
  taskset -c "0-$((n - 1))" haproxy -f "$RUN/mc-s2.cfg" -db >>"$RUN/mc-s2.out" 2>&1 &
  PROXY_PID=$!; STARTED+=("$PROXY_PID")
  wait_port "$PORT" "$PROXY_PID" || die "HAProxy did not start (see $RUN/mc-s2.out)"
  sleep 0.3
}

# per-pid request counts from certbound's access log (JSON lines with "pid"), between two byte offsets
per_pid_requests() { # FILE FROM_BYTE -> {"pid": count, ...}
  tail -c +"$(($2 + 1))" "$1" | grep -o '^{"level":"info","pid":[0-9]*,"time":"[^"]*","msg":"request"' | cut -d, -f2 | cut -d: -f2 |
    sort | uniq -c | awk 'BEGIN { printf "{" } { printf "%s\"%s\":%d", (n++ ? "," : ""), $2, $1 } END { printf "}" }'
}
ticks_of() { local p; for p in ${1//,/ }; do printf '%s:%s ' "$p" "$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)"; done; }

measure() { # SYS N MODE ROUND SCHED CPUS(for the proxy) LGCORES...
  local sys=$1 n=$2 mode=$3 r=$4 sched=$5 cpus=$6; shift 6
  local lgc=("$@") dur=$DUR_KA conns=$((CONNS_KA * n)) pids out='' from=0 i lgp=() t0 t1 workers
  [[ $mode == hs ]] && dur=$DUR_HS conns=$((CONNS_HS * n))
  if [[ $sys == S2 ]]; then start_haproxy "$n"; pids=$(pids_of "$PROXY_PID")
  else
    workers=$n; [[ $n == 1 ]] && workers=0 # one core: one process, as a user would run it
    NODE_CLUSTER_SCHED_POLICY=$sched start_certbound "mc-s5" full "$PORT" "$ADMIN" "$workers" "$cpus" || { log "certbound N=$n did not start: $GW_ERR"; stop_gateway; return 1; }
    pids=$(gw_pids_csv); out=$RUN/mc-s5.out; from=$(stat -c %s "$out")
  fi
  local chk=(--check-path /whoami --check-contains CN=client1)
  [[ $sys == S5 ]] && chk=(--check-path /echo --check-contains x-credential-sub=client1-service-account)
  t0=$(ticks_of "$pids")
  for ((i = 0; i < ${#lgc[@]}; i++)); do
    timeout -k 5 $((dur + 60)) taskset -c "${lgc[$i]}" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:$PORT/" --mode "$mode" \
      --connections $(((conns + ${#lgc[@]} - 1) / ${#lgc[@]})) --duration "$dur" --warmup 1 --max-seconds $((dur + 50)) \
      --cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt" --token "$JWT/token.jwt" \
      $( ((i == 0)) && echo "${chk[@]}") --watch "proxy=$pids" --label "mc-$sys-$n-$mode-$i" >"$RUN/mc-lg$i.json" 2>"$RUN/mc-lg$i.err" &
    lgp+=($!)
  done
  local ok=1; for p in "${lgp[@]}"; do wait "$p" || ok=0; done
  t1=$(ticks_of "$pids")
  local perpid='{}'; [[ $sys == S5 ]] && perpid=$(per_pid_requests "$out" "$from")
  if ((ok)); then
    RUN=$RUN MC_SPREAD_ONLY=${MC_SPREAD_ONLY:-0} node -e '
      const fs = require("fs"); const [sys, n, mode, r, sched, cpus, nl, pids, t0, t1, perpid] = process.argv.slice(1)
      const rs = []; for (let i = 0; i < +nl; i++) rs.push(JSON.parse(fs.readFileSync(process.env.RUN + "/mc-lg" + i + ".json", "utf8")))
      const rps = rs.reduce((t, x) => t + x.rps, 0); const cpu = rs.reduce((t, x) => t + x.cpu.proxy.cpu_pct, 0) / rs.length
      const tk = (s) => Object.fromEntries(s.trim().split(" ").filter(Boolean).map((e) => e.split(":").map(Number)))
      const a = tk(t0), b = tk(t1); const per = JSON.parse(perpid)
      const procs = Object.keys(b).map((p) => ({ pid: +p, cpu_ticks: b[p] - (a[p] ?? 0), requests: per[p] ?? 0 }))
      console.log(JSON.stringify({ sys, n: +n, mode, round: +r, sched: sys === "S5" ? sched : null, cpus, load_generators: +nl,
        rps: Math.round(rps), proxy_cpu_pct: Math.round(cpu), us_per_req: +(cpu / 100 * 1e6 / rps).toFixed(1),
        p99_ms: Math.max(...rs.map((x) => x.lat_ms.p99)), non2xx: rs.reduce((t, x) => t + x.non2xx, 0), errors: rs.reduce((t, x) => t + x.errors, 0),
        other_cpu_pct: Math.max(...rs.map((x) => x.other_cpu_pct)), spread_only: process.env.MC_SPREAD_ONLY === "1", procs }))
    ' "$sys" "$n" "$mode" "$r" "$sched" "$cpus" "${#lgc[@]}" "$pids" "$t0" "$t1" "$perpid" | tee -a "$RESULTS" >>"$LOG"
    log "  $(tail -1 "$RESULTS" | cut -c1-400)"
  else log "  $sys N=$n $mode: a load generator failed: $(tail -2 "$RUN"/mc-lg*.err | tr '\n' ' ' | cut -c1-300)"; fi
  if [[ $sys == S2 ]]; then stop_pid "$PROXY_PID"; forget_pid "$PROXY_PID"; else stop_gateway; fi
}

SKIPPED=()
for ((r = 1; r <= MC_ROUNDS; r++)); do
  for n in $MC_NS; do
    read -r -a lg <<<"$(lg_cores "$n")"
    if ((n > LAST)); then SKIPPED+=("N=$n: needs $n proxy cores + at least one core for the load generator and the upstream; this machine has $NCPU"); continue; fi
    for m in $MC_MODES; do
      log "== N=$n $m: proxy cores 0-$((n - 1)), load generators on ${lg[*]}, upstream + issuer on $UP_CORE"
      measure S2 "$n" "$m" "$r" - "0-$((n - 1))" "${lg[@]}"
      for sc in $MC_SCHED; do measure S5 "$n" "$m" "$r" "$sc" "0-$((n - 1))" "${lg[@]}"; done
    done
  done
  # too small for N=2 with cores of its own: workers: 2 on all cores, beside the load generator, for the spread only
  if ((MC_DIST == 1 && NCPU < 4)); then
    for m in $MC_MODES; do
      for sc in $MC_SCHED; do
        log "== spread only: certbound workers: 2 on cores 0-$LAST (shared with the load generator on $LAST), $m, scheduling $sc"
        MC_SPREAD_ONLY=1 measure S5 2 "$m" "$r" "$sc" "0-$LAST" "$LAST"
      done
    done
  fi
done
stop_all
for s in ${SKIPPED[@]+"${SKIPPED[@]}"}; do log "skipped $s"; done
printf '%s\n' ${SKIPPED[@]+"${SKIPPED[@]}"} >"$OUTDIR/skipped.txt"
node "$HERE/summarize-multicore.mjs" "$OUTDIR" | tee "$OUTDIR/table.md"
