#!/usr/bin/env bash
# certbound benchmark (`npm run bench`): sets up what it needs, starts everything, checks it, loads it side by side
# with HAProxy and nginx in ONE run, stops what it started (by PID), prints a table with ratios.
# Adapted from ../shared/anchors-bench/run-anchors.sh (certbound reference harness): see bench/README.md.
#
# usage: bash bench/run.sh                  (defaults: ~4 minutes)
#        BENCH_QUICK=1 bash bench/run.sh    (~2 minute smoke test: RUNS=1 DUR_KA=2 DUR_HS=1 WARMUP=0, no quiet-waits,
#                                            no retries, no separate `certbound validate` before each start)
#        RUNS=3 bash bench/run.sh           (the README's figures: medians of 3)
# env:   SCENARIOS="S0 S1 S2 S4 S4k S5p S5 S6 S5c"   (see README.md; also S5rl S5rr: S5 + rate-limiting local / redis;
#                                                     S5r: S5 with gateway.store.redis; S5d S5dr: the DPoP chain, memory / redis store)
#        RUNS=1  DUR_KA=10  DUR_HS=5  CONNS_KA=64  CONNS_HS=16  WARMUP=2
#        MODES="ka hs rs"  (ka keep-alive; hs a full TLS handshake per request; rs the same resuming the last ticket)
#        SUT_CPU=0 (the proxy under test)  RIG_CPU=1 (load generator, upstream, issuer, IdP)
#        BENCH_SETUP=1 (run bench/setup.sh first; 0 skips it)  BENCH_BUILD=auto|1|0 (rebuild dist/ when stale)
#        BENCH_VALIDATE=1 (`certbound validate` each generated config before starting it)
#        FRESH_PKI=1  QUIET_MAX=15 QUIET_BUDGET=45  NOISE_MAX=25 RETRY_BUDGET=4 RETRY_PER=1
#        UP_PORT=9000 ISS_PORT=9449 INTRO_PORT=9450  S5C_WORKERS=2  STORE_REDIS_PORT=(a free port)
#        PAIRED="S2 S4k" (anchors measured at the same time as certbound S5, on the same core; "" skips)
#        PAIR_RUNS=5 DUR_PAIR=8 PAIR_MODES="ka hs rs" (the paired runs' modes: hs/rs with CONNS_HS/2 connections per side)
#        MULTICORE=1 (run bench/multicore.sh instead: workers: N vs nbthread N on N = 1, 2, 4, 8 as the cores allow)
# Only 127.0.0.1 is ever targeted. Every load run is bounded (loadgen --max-seconds + timeout(1)).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  RUNS=${RUNS:-1} DUR_KA=${DUR_KA:-2} DUR_HS=${DUR_HS:-1} WARMUP=${WARMUP:-0} PAIR_RUNS=${PAIR_RUNS:-1} DUR_PAIR=${DUR_PAIR:-2} QUIET_BUDGET=${QUIET_BUDGET:-0} RETRY_BUDGET=${RETRY_BUDGET:-0}
  BENCH_VALIDATE=${BENCH_VALIDATE:-0}
fi
SCENARIOS=${SCENARIOS-"S0 S1 S2 S4 S4k S5p S5 S6 S5c"} # set but empty: only the paired runs
RUNS=${RUNS:-1}
DUR_KA=${DUR_KA:-10}
DUR_HS=${DUR_HS:-5}
MODES=${MODES:-"ka hs rs"}
CONNS_KA=${CONNS_KA:-64}
CONNS_HS=${CONNS_HS:-16}
WARMUP=${WARMUP:-2}
NOISE_MAX=${NOISE_MAX:-25}
RETRY_BUDGET=${RETRY_BUDGET:-4}
RETRY_PER=${RETRY_PER:-1}
S5C_WORKERS=${S5C_WORKERS:-2}
PAIRED=${PAIRED-"S2 S4k"} # anchors run beside certbound S5 at the same time ("" = none)
PAIR_RUNS=${PAIR_RUNS:-5}
DUR_PAIR=${DUR_PAIR:-8}
PAIR_MODES=${PAIR_MODES:-"ka hs rs"}
T_START=$(date +%s)

if [[ ${BENCH_SETUP:-1} == 1 ]]; then bash "$HERE/setup.sh" >&2; fi
# MULTICORE=1: the multi-core mode instead (certbound workers: N beside HAProxy nbthread N; see bench/multicore.sh)
if [[ ${MULTICORE:-0} == 1 ]]; then exec bash "$HERE/multicore.sh"; fi

source "$HERE/lib.sh"
export RUNS DUR_KA DUR_HS CONNS_KA CONNS_HS SUT_CPU RIG_CPU SCENARIOS MODES PAIRED PAIR_RUNS DUR_PAIR PAIR_MODES WARMUP
RESULTS=$OUTDIR/results.jsonl
declare -A PORT=([S1]=8441 [S2]=8442 [S3t]=8459 [S4]=8444 [S4k]=8450 [S5]=8446 [S5c]=8447 [S5p]=8448 [S6]=8449 [S5rl]=8454 [S5rr]=8455 [S5r]=8456 [S5d]=8457 [S5dr]=8458)
declare -A ADMIN=([S5]=9106 [S5c]=9107 [S5p]=9108 [S6]=9109 [S5rl]=9114 [S5rr]=9115 [S5r]=9116 [S5d]=9117 [S5dr]=9118)
need_tools
install_traps
for s in $SCENARIOS; do
  case $s in S0|S1|S2|S3t|S4|S4k|S5|S5c|S5p|S6|S5rl|S5rr|S5r|S5d|S5dr) ;; *) die "unknown scenario $s (known: S0 S1 S2 S3t S4 S4k S5p S5 S6 S5c S5rl S5rr S5r S5d S5dr)" ;; esac
done
for p in $UP_PORT $ISS_PORT $INTRO_PORT "${PORT[@]}" "${ADMIN[@]}"; do port_free "$p" || die "port $p on 127.0.0.1 is already in use"; done

log "certbound bench -> $OUTDIR  (scenarios: $SCENARIOS; runs=$RUNS ka=${DUR_KA}s/c$CONNS_KA hs=${DUR_HS}s/c$CONNS_HS; SUT cpu$SUT_CPU, rig cpu$RIG_CPU)"
[[ " $SCENARIOS " == *" S5"* || " $SCENARIOS " == *" S6 "* || -n $PAIRED ]] && ensure_build
make_pki_tokens

# ---------------------------------------------------------------- environment record
GW_NODE_FLAGS=$GW_NODE_FLAGS ISS=$ISS ROOT=$ROOT node -e '
const os = require("os"), fs = require("fs"), { execSync } = require("child_process");
const sh = (c) => { try { return execSync(c, { stdio: ["ignore", "pipe", "pipe"] }).toString().trim() } catch (e) { return String(e.stderr || e.message).trim() } };
const pkg = (n) => { try { return require(process.argv[1] + "/node_modules/" + n + "/package.json").version } catch { return null } };
const d = process.env.ROOT; let p = {}; try { p = JSON.parse(fs.readFileSync(d + "/package.json", "utf8")) } catch {}
fs.writeFileSync(process.argv[2], JSON.stringify({
  date_utc: new Date().toISOString(), host_cpus: os.cpus().length, cpu_model: os.cpus()[0].model, mem_gib: Math.round(os.totalmem() / 2 ** 30),
  kernel: os.release(), loadavg_before: os.loadavg(), node: process.version, node_openssl: process.versions.openssl,
  nginx: sh("nginx -v 2>&1"), haproxy: sh("haproxy -v | head -1"), system_openssl: sh("openssl version"),
  autocannon: pkg("autocannon"), jose: pkg("jose"), undici: pkg("undici"),
  settings: { runs: +process.env.RUNS, dur_ka: +process.env.DUR_KA, dur_hs: +process.env.DUR_HS, conns_ka: +process.env.CONNS_KA, conns_hs: +process.env.CONNS_HS, sut_cpu: +process.env.SUT_CPU, rig_cpu: +process.env.RIG_CPU, scenarios: process.env.SCENARIOS, modes: process.env.MODES, iss: process.env.ISS,
    paired: process.env.PAIRED, pair_runs: +process.env.PAIR_RUNS, dur_pair: +process.env.DUR_PAIR, pair_modes: process.env.PAIR_MODES, warmup: +process.env.WARMUP,
    loadgen: "bench/loadgen.mjs on the rig core: ka = autocannon " + pkg("autocannon") + " (HTTP/1.1, no pipelining), hs/rs = its own node:tls client (Connection: close)",
    proxy_cpu: "utime+stime from /proc/PID/stat of every process of the proxy (all threads), over the measured window, divided by the requests completed in it",
    logging: "certbound: access log on (JSON lines on stdout into a file under run/), metrics on (admin listener); nginx and HAProxy: access logs off" },
  certbound: { node_flags: process.env.GW_NODE_FLAGS ?? "", dir: d, package: p.name ? p.name + "@" + p.version : null, commit: sh("git -C \"" + d + "\" describe --always --dirty --abbrev=12 2>/dev/null || echo none") },
}, null, 1) + "\n");
' "$HERE" "$OUTDIR/env.json"

start_upstream

# ---------------------------------------------------------------- scenario helpers
start_proxy() { # S1 S2 S3t S4 S4k -> PROXY_PID
  local s=$1 port=${PORT[$1]}
  case $s in
    S1) render "$HERE/conf/s1-nginx-mtls.conf" "$RUN/s1.conf" "$port"
        taskset -c "$SUT_CPU" nginx -c "$RUN/s1.conf" -e "$RUN/s1-error.log" >>"$LOG" 2>&1 & ;;
    S2) render "$HERE/conf/s2-haproxy.cfg" "$RUN/s2.cfg" "$port"
        haproxy -c -q -f "$RUN/s2.cfg" >>"$LOG" 2>&1 || die "haproxy config check failed"
        taskset -c "$SUT_CPU" haproxy -f "$RUN/s2.cfg" -db >>"$RUN/s2.out" 2>&1 & ;;
    # shellcheck disable=SC2086 # GW_LAUNCHER, GW_NODE_FLAGS: certbound's launch (jemalloc, one TLS 1.3 ticket): the floor is certbound's
    S3t) taskset -c "$SUT_CPU" $GW_LAUNCHER node $GW_NODE_FLAGS "$HERE/node-tls-floor.mjs" --port "$port" --pki "$PKI" >>"$RUN/s3t.out" 2>&1 & ;;
    S4) taskset -c "$SUT_CPU" node "$HERE/node-naive-proxy.mjs" --port "$port" --pki "$PKI" --jwt-pub "$JWT/pub.pem" --iss "$ISS" --aud "$AUD" --upstream "http://127.0.0.1:$UP_PORT" >>"$RUN/s4.out" 2>&1 & ;;
    S4k) taskset -c "$SUT_CPU" node "$HERE/node-naive-proxy.mjs" --token-cache --port "$port" --pki "$PKI" --jwt-pub "$JWT/pub.pem" --iss "$ISS" --aud "$AUD" --upstream "http://127.0.0.1:$UP_PORT" >>"$RUN/s4k.out" 2>&1 & ;;
  esac
  PROXY_PID=$!; STARTED+=("$PROXY_PID")
  wait_port "$port" "$PROXY_PID" || die "$s did not start (see $RUN/)"
  sleep 0.3 # let workers come up
}
stop_proxy() { stop_pid "$PROXY_PID"; forget_pid "$PROXY_PID"; }

check_s1() { # mTLS floor proxy: cert required, X-Client-Cert forwarded
  local port=${PORT[S1]} c
  c=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/client1.crt" --key "$PKI/client1.key" "https://localhost:$port/echo") || return 1
  grep -q '^x-client-cert=-----BEGIN%20CERTIFICATE' <<<"$c" || { log "S1: X-Client-Cert not forwarded: $c"; return 1; }
  c=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$port/" 2>/dev/null || true)
  [[ $c == 400 || $c == 000 ]] || { log "S1: request without client cert answered $c"; return 1; }
  c=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/other-client.crt" --key "$PKI/other-client.key" -o /dev/null -w '%{http_code}' "https://localhost:$port/" 2>/dev/null || true)
  [[ $c == 400 || $c == 000 ]] || { log "S1: cert from unrelated CA answered $c"; return 1; }
  log "S1 checks: client1 -> 200 with X-Client-Cert upstream; no cert -> rejected; unrelated CA -> rejected"
}

check_s3t() { # the TLS floor: it answers client1 by name, and refuses a client without a certificate
  local port=${PORT[S3t]} c
  c=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/client1.crt" --key "$PKI/client1.key" "https://localhost:$port/whoami") || return 1
  grep -q '^CN=client1' <<<"$c" || { log "S3t: unexpected answer: $c"; return 1; }
  c=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" -o /dev/null -w '%{http_code}' "https://localhost:$port/" 2>/dev/null || true)
  [[ $c == 000 ]] || { log "S3t: request without client cert answered $c"; return 1; }
  log "S3t checks: client1 -> its CN; no cert -> handshake refused"
}

rss_mb() { # PID... -> JSON array of VmRSS in MB
  local p v out=()
  for p in "$@"; do v=$(awk '/^VmRSS:/{printf "%.1f", $2/1024}' "/proc/$p/status" 2>/dev/null) && [[ -n $v ]] && out+=("$v"); done
  (IFS=,; echo "[${out[*]}]")
}
# placement LABEL PIDS CPUS: record what the measured processes really are (executable, script, working
# directory) and where they may run (their affinity), so that the table states what was measured, not what was
# meant (the reference harness once measured another checkout's certbound through npx's shared cache)
cpulist() { awk -v RS=, '{ n = split($0, r, "-"); for (i = r[1]; i <= r[n]; i++) printf "%s%d", (c++ ? "," : ""), i }' <<<"$1"; } # 0-2,5 -> 0,1,2,5
placement() {
  local p aff bad=0 what=() want
  want=$(cpulist "$3")
  for p in ${2//,/ }; do
    aff=$(taskset -pc "$p" 2>/dev/null | sed 's/.*: //') || aff='?'
    [[ $(cpulist "$aff") == "$want" ]] || bad=1
    what+=("$p $(readlink "/proc/$p/exe" 2>/dev/null) $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-160)| cwd $(readlink "/proc/$p/cwd" 2>/dev/null) | cpus $aff")
  done
  printf '{"label":"%s","want_cpus":"%s","pinned_as_stated":%s,"procs":%s}\n' "$1" "$3" "$([[ $bad == 0 ]] && echo true || echo false)" \
    "$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' "${what[@]}")" >>"$OUTDIR/placement.jsonl"
  ((bad == 0)) || log "WARNING $1: a measured process is not pinned to cpu $3: ${what[*]}"
}
note() { printf '{"label":"%s","text":%s}\n' "$1" "$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$2")" >>"$OUTDIR/notes.jsonl"; }

load() { # load SCN MODE URL WATCH... ; appends JSON lines to $RESULTS
  local s=$1 mode=$2 url=$3; shift 3
  local dur=$DUR_KA conns=$CONNS_KA tlsargs=() i warm
  [[ $mode != ka ]] && dur=$DUR_HS conns=$CONNS_HS
  if [[ $url == https* ]]; then
    tlsargs=(--cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt")
    # S5d/S5dr: the DPoP-bound token, with a fresh proof by its key on every request (loadgen --dpop-key)
    if [[ $s == S5d || $s == S5dr ]]; then tlsargs+=(--token "$JWT/token-dpop.jwt" --dpop-key "$JWT/dpop-key.pem")
    elif [[ $s != S1 && $s != S5p ]]; then tlsargs+=(--token "$JWT/token.jwt"); fi
    # the preflight proves client1's certificate reaches the proxy. certbound has no /whoami: a 200 from /echo
    # with the token's sub injected means the token verified and its cnf matched client1's certificate (strict PoP)
    # (S5d/S5dr: matched the proof's key)
    case $s in
      S5|S5c|S6|S5rl|S5rr|S5r|S5d|S5dr) tlsargs+=(--check-path /echo --check-contains x-credential-sub=client1-service-account) ;;
      S5p) tlsargs+=(--check-path /echo --check-contains x-credential-sub=) ;;
      *) tlsargs+=(--check-path /whoami --check-contains CN=client1) ;;
    esac
  fi
  local retries=0 other
  i=$ROUND; warm=$WARMUP
  while ((i <= ROUND)); do
    wait_quiet
    if ! timeout -k 5 $((dur + warm + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "$url" --mode "$mode" \
        --connections "$conns" --duration "$dur" --warmup "$warm" --max-seconds $((dur + warm + 50)) \
        --label "$s" "${tlsargs[@]}" "$@" >"$OUTDIR/run.json" 2>"$LOG.tmp"; then
      cat "$LOG.tmp" >>"$LOG"; log "$s $mode run $i FAILED: $(tail -2 "$LOG.tmp" | tr '\n' ' ' | cut -c1-300)"; rm -f "$LOG.tmp"; return 1
    fi
    cat "$LOG.tmp" >>"$LOG"
    other=$(grep -o '"other_cpu_pct":[-0-9.]*' "$OUTDIR/run.json" | cut -d: -f2 | cut -d. -f1)
    if ((${other:-0} > NOISE_MAX && RETRY_BUDGET > 0 && retries < RETRY_PER)); then
      RETRY_BUDGET=$((RETRY_BUDGET - 1)); retries=$((retries + 1))
      log "  run $i/$RUNS set aside: other processes used ${other}% of a core (retries left: $RETRY_BUDGET)"
      cat "$OUTDIR/run.json" >>"$OUTDIR/results-noisy.jsonl"; rm -f "$LOG.tmp"
      warm=0
      continue
    fi
    cat "$OUTDIR/run.json" >>"$RESULTS"
    if ((${other:-0} > NOISE_MAX)); then log "  run $i/$RUNS kept although other processes used ${other}% of a core (no retries left)"; fi
    log "  run $i/$RUNS: $(tail -1 "$LOG.tmp" | cut -d: -f2-)"; rm -f "$LOG.tmp" "$OUTDIR/run.json"
    if [[ -n ${RSS_PIDS:-} ]]; then printf '{"label":"%s","mode":"%s","rss_mb":%s}\n' "$s" "$mode" "$(rss_mb ${RSS_PIDS//,/ })" >>"$OUTDIR/rss.jsonl"; fi
    i=$((i + 1)); warm=0
  done
}

# ---------------------------------------------------------------- scenarios
FAILED=() SKIPPED=()
# RUNS > 1: rounds over all scenarios (S2 S5 ... S2 S5 ...), not RUNS runs of one scenario after another, so that
# a noisy minute on the shared machine does not land on one scenario's runs only
for ((ROUND = 1; ROUND <= RUNS; ROUND++)); do
((RUNS > 1)) && log "=== round $ROUND of $RUNS"
for s in $SCENARIOS; do
  RSS_PIDS=
  case $s in
    S0)
      log "== S0 direct: loadgen -> upstream nginx, plain HTTP (upstream moved to cpu$SUT_CPU)"
      pin "$SUT_CPU" "$UP_PIDS"
      for m in ${MODES/rs/}; do log " S0 $m"; load S0 $m "http://127.0.0.1:$UP_PORT/" --watch "upstream=$UP_PIDS" || FAILED+=("S0/$m"); done
      pin "$RIG_CPU" "$UP_PIDS"
      ;;
    S1|S2|S3t|S4|S4k)
      case $s in
        S1) desc="nginx mTLS proxy, no token check" ;;
        S3t) desc="Node TLS floor (node:tls, client certificate, a canned 200: no HTTP parser, no proxy, no token)" ;;
        S2) desc="HAProxy 2.6 full chain (mTLS + jwt_verify + cnf + scope)" ;;
        S4) desc="naive Node proxy (node:https + jose + undici), 1 process" ;;
        S4k) desc="naive Node proxy + a map of verified tokens (exp, scope, binding checked per request), 1 process" ;;
      esac
      log "== $s $desc on 127.0.0.1:${PORT[$s]}, cpu$SUT_CPU"
      start_proxy "$s"
      PROXY_PIDS=$(pids_of "$PROXY_PID")
      ok=1
      if [[ $s == S1 ]]; then check_s1 || ok=0
      elif [[ $s == S3t ]]; then check_s3t || ok=0
      else
        PKI=$PKI JWT=$JWT "$HERE/verify-chain.sh" "${PORT[$s]}" "$s" >"$RUN/verify-$s.txt" 2>&1 || ok=0
        cat "$RUN/verify-$s.txt" >>"$LOG"
        log "$s verify-chain: $(grep -E 'passed, [0-9]+ failed' "$RUN/verify-$s.txt" | tail -1 | sed 's/^verify-chain: //')"
      fi
      if ((ok)); then
        [[ $s == S3t || $s == S4 || $s == S4k ]] && RSS_PIDS=$PROXY_PIDS
        placement "$s" "$PROXY_PIDS" "$SUT_CPU"
        for m in $MODES; do log " $s $m"; load "$s" $m "https://127.0.0.1:${PORT[$s]}/" --watch "proxy=$PROXY_PIDS" --watch "upstream=$UP_PIDS" || FAILED+=("$s/$m"); done
      else
        log "$s functional checks FAILED - not benchmarked"; FAILED+=("$s/checks")
      fi
      stop_proxy
      ;;
    S5|S5c|S5p|S6|S5rl|S5rr|S5r|S5d|S5dr)
      workers=0 cpus=$SUT_CPU vmode=contract
      case $s in
        S5r) kind=full-sr desc="certbound full chain with gateway.store.redis (a local redis-server on cpu$RIG_CPU), 1 process" ;;
        S5d) kind=dpop vmode=dpop desc="certbound DPoP chain (openid-connect proof_of_possession_dpop strict, ES256 proof per request, jti replay check in the memory store) + require-scopes + request-transformer, 1 process" ;;
        S5dr) kind=dpop-sr vmode=dpop desc="certbound DPoP chain with gateway.store.redis (jti replay check in Redis), 1 process" ;;
        S5rl) kind=full-rl desc="certbound full chain + rate-limiting (minute: 1000000 per credential, policy local), 1 process" ;;
        S5rr) kind=full-rlr desc="certbound full chain + rate-limiting (minute: 1000000 per credential, policy redis on a local redis-server), 1 process" ;;
        S5) kind=full desc="certbound full chain (openid-connect strict PoP + require-scopes + request-transformer), 1 process" ;;
        S5c) kind=full workers=$S5C_WORKERS cpus="0-$((NCPU - 1))" desc="certbound full chain, gateway.workers: $S5C_WORKERS (unpinned)" ;;
        S5p) kind=plain vmode=plain desc="certbound as a plain mTLS proxy (no plugin): the cost of its own machinery" ;;
        S6) kind=intro desc="certbound token-introspection (strict binding, warm cache) + require-scopes + request-transformer" ;;
      esac
      log "== $s $desc on 127.0.0.1:${PORT[$s]}"
      if ! start_certbound "$s" "$kind" "${PORT[$s]}" "${ADMIN[$s]}" "$workers" "$cpus"; then
        stop_gateway
        if [[ $s == S5c && $GW_ERR == *workers* ]]; then log "$s skipped: $GW_ERR"; SKIPPED+=("$s: $GW_ERR"); note "$s" "skipped: $GW_ERR"
        else log "$s certbound did not start: $GW_ERR"; FAILED+=("$s/start"); note "$s" "did not start: $GW_ERR"; fi
        continue
      fi
      PROXY_PIDS=$(gw_pids_csv); RSS_PIDS=$PROXY_PIDS
      : >"$RUN/issuer-access.log"
      ok=1
      # S5r/S5dr: the gateway must really hold its state in Redis (/status says so), or the row would be S5's again
      if [[ $kind == *-sr ]]; then
        st=$(curl -sS --max-time 5 "http://127.0.0.1:${ADMIN[$s]}/status" 2>&1 || true)
        if [[ $st == *'"backend":"redis"'* && $st == *'"connected":true'* ]]; then log "$s /status: store $(grep -o '"store":{[^}]*}' <<<"$st")"
        else log "$s: /status does not show a connected redis store: ${st:0:300}"; ok=0; fi
      fi
      if [[ $vmode == dpop ]]; then PKI=$PKI JWT=$JWT "$HERE/verify-dpop.sh" "${PORT[$s]}" "$s" >"$RUN/verify-$s.txt" 2>&1 || ok=0
      else VERIFY_MODE=$vmode PKI=$PKI JWT=$JWT "$HERE/verify-chain.sh" "${PORT[$s]}" "$s" >"$RUN/verify-$s.txt" 2>&1 || ok=0; fi
      cat "$RUN/verify-$s.txt" >>"$LOG"
      log "$s verify-chain ($vmode): $(grep -E 'passed, [0-9]+ failed' "$RUN/verify-$s.txt" | tail -1 | sed 's/^verify-chain: //')"
      if ((ok)); then
        watch=(--watch "proxy=$PROXY_PIDS" --watch "upstream=$UP_PIDS")
        [[ ($kind == full* || $kind == dpop*) && -n $ISS_PIDS ]] && watch+=(--watch "issuer=$ISS_PIDS")
        [[ $kind == *-sr && -n $STORE_REDIS_PID ]] && watch+=(--watch "store=$STORE_REDIS_PID")
        [[ $kind == intro && -n $INTRO_PID ]] && watch+=(--watch "idp=$INTRO_PID")
        [[ $kind == intro ]] && before=$(intro_stats)
        placement "$s" "$PROXY_PIDS" "$cpus"
        for m in $MODES; do log " $s $m"; load "$s" $m "https://127.0.0.1:${PORT[$s]}/" "${watch[@]}" || FAILED+=("$s/$m"); done
        if [[ $kind == intro ]]; then
          after=$(intro_stats)
          log "$s introspection endpoint: before the load $before, after $after"
          note "$s" "introspection endpoint counters before the load runs $before, after $after (warm cache: the load adds ~0 calls)"
        fi
        if [[ $kind == *-sr ]] && command -v redis-cli >/dev/null; then
          log "$s redis after the load: $(redis-cli -h 127.0.0.1 -p "$STORE_REDIS_PORT" --scan --pattern 'certbound-bench:*' 2>&1 | wc -l) keys under certbound-bench:, $(redis-cli -h 127.0.0.1 -p "$STORE_REDIS_PORT" info stats 2>&1 | grep -E '^total_commands_processed' | tr -d '\r')"
        fi
        if mt=$(curl -sS --max-time 5 "http://127.0.0.1:${ADMIN[$s]}/metrics" 2>&1); then
          log "$s admin /metrics: $(grep -cv '^#' <<<"$mt") sample lines; requests counted: $(awk '/^certbound_http_requests_total[{ ]/{s+=$NF} END{printf "%d", s}' <<<"$mt")"
        else
          log "$s admin /metrics did not answer: ${mt:0:200}"; note "$s" "the admin listener's /metrics did not answer within 5 s after the load (${mt:0:120})"
        fi
      else
        log "$s functional checks FAILED - not benchmarked: $(grep FAIL "$RUN/verify-$s.txt" | head -5 | tr '\n' ' ' | cut -c1-400)"; FAILED+=("$s/checks")
        note "$s" "functional checks failed, not benchmarked: $(grep FAIL "$RUN/verify-$s.txt" | head -5 | tr '\n' ';' | cut -c1-400)"
      fi
      stop_gateway
      out=$RUN/${s,,}.out
      log "$s stopped; it wrote $(wc -l <"$out") lines ($(($(stat -c %s "$out") / 1024)) KiB) to stdout+stderr ($out, trimmed to the first 200 and last 20 lines); the static issuer served $(wc -l <"$RUN/issuer-access.log") requests while $s ran"
      if (($(wc -l <"$out") > 220)); then { head -200 "$out"; echo "[... trimmed by bench/run.sh ...]"; tail -20 "$out"; } >"$out.trim" && mv "$out.trim" "$out"; fi
      ;;
  esac
done
done

# ---------------------------------------------------------------- paired runs
# certbound (S5, full chain) and one anchor at the same time, both pinned to cpu$SUT_CPU, each with its own load
# generator (half the connections each): whatever else the shared machine does slows both alike, so the ratio of
# their CPU per request holds where back-to-back runs drift (HAProxy alone measured 111-195 µs/req on one day).
if [[ -n $PAIRED ]]; then
  log "== paired runs: certbound S5 beside ${PAIRED// /, } on cpu$SUT_CPU, modes $PAIR_MODES, ${PAIR_RUNS}x${DUR_PAIR}s, half the connections each"
  if start_certbound S5 full "${PORT[S5]}" "${ADMIN[S5]}" 0 "$SUT_CPU"; then
    CB_PIDS=$(gw_pids_csv)
    for a in $PAIRED; do
      start_proxy "$a"
      A_PIDS=$(pids_of "$PROXY_PID")
      if [[ $a == S3t ]]; then
        check_s3t || { log "  $a functional checks FAILED - not paired"; FAILED+=("pair-$a/checks"); stop_proxy; continue; }
      elif ! PKI=$PKI JWT=$JWT "$HERE/verify-chain.sh" "${PORT[$a]}" "$a" >"$RUN/verify-pair-$a.txt" 2>&1; then
        log "  $a functional checks FAILED - not paired"; FAILED+=("pair-$a/checks"); stop_proxy; continue
      fi
      for pm in $PAIR_MODES; do
      pconns=$((CONNS_KA / 2)); [[ $pm != ka ]] && pconns=$((CONNS_HS / 2))
      for ((r = 1; r <= PAIR_RUNS; r++)); do
        wait_quiet
        warm=0; ((r == 1)) && warm=$WARMUP
        lg=()
        for side in "$a" S5; do
          pids=$CB_PIDS; [[ $side != S5 ]] && pids=$A_PIDS
          chk=(--check-path /whoami --check-contains CN=client1)
          [[ $side == S5 ]] && chk=(--check-path /echo --check-contains x-credential-sub=client1-service-account)
          timeout -k 5 $((DUR_PAIR + warm + 60)) taskset -c "$RIG_CPU" node "$HERE/loadgen.mjs" --url "https://127.0.0.1:${PORT[$side]}/" \
            --mode "$pm" --connections "$pconns" --duration "$DUR_PAIR" --warmup "$warm" --max-seconds $((DUR_PAIR + warm + 50)) \
            --label "pair-$side" --cert "$PKI/client1.crt" --key "$PKI/client1.key" --ca "$PKI/ca.crt" --token "$JWT/token.jwt" "${chk[@]}" \
            --watch "proxy=$pids" >"$RUN/pair-$pm-$a-$side-$r.json" 2>>"$LOG" &
          lg+=($!)
        done
        okp=1; for p in "${lg[@]}"; do wait "$p" || okp=0; done
        if ((okp)); then
          line=$(node -e 'const f = (s) => JSON.parse(require("fs").readFileSync(s, "utf8")); const a = f(process.argv[1]), c = f(process.argv[2]);
            console.log(JSON.stringify({ anchor: process.argv[3], round: +process.argv[4], mode: process.argv[5], anchor_us: a.cpu.proxy.us_per_req, certbound_us: c.cpu.proxy.us_per_req, anchor_rps: a.rps, certbound_rps: c.rps, anchor_p99: a.lat_ms.p99, certbound_p99: c.lat_ms.p99, anchor_non2xx: a.non2xx + a.errors, certbound_non2xx: c.non2xx + c.errors }))' \
            "$RUN/pair-$pm-$a-$a-$r.json" "$RUN/pair-$pm-$a-S5-$r.json" "$a" "$r" "$pm")
          echo "$line" >>"$OUTDIR/paired.jsonl"
          log "  pair $a/S5 $pm run $r: $line"
        else log "  pair $a/S5 $pm run $r FAILED (see $LOG)"; FAILED+=("pair-$a/$pm/$r"); fi
      done
      done
      stop_proxy
    done
    stop_gateway
  else log "paired runs: certbound did not start: $GW_ERR"; FAILED+=("paired/start"); stop_gateway; fi
fi

stop_all
log "all started processes stopped; elapsed $(($(date +%s) - T_START)) s"

if [[ -s $RESULTS || -s $OUTDIR/paired.jsonl ]]; then node "$HERE/summarize.mjs" "$OUTDIR" | tee "$OUTDIR/table.md"
else echo "no measured runs (see $LOG)" | tee "$OUTDIR/table.md"; fi
echo
for k in ${SKIPPED[@]+"${SKIPPED[@]}"}; do echo "SKIPPED $k"; done
echo "results: $OUTDIR (table.md, results.jsonl, env.json, run.log, run/)"
if ((${#FAILED[@]})); then echo "FAILED: ${FAILED[*]}"; exit 1; fi
