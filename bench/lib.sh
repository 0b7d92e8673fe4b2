# shellcheck shell=bash
# Shared helpers of bench/run.sh, bench/soak.sh and bench/profile.sh (sourced, not run).
# Much of this is adapted from ../shared/anchors-bench/run-anchors.sh (certbound reference harness): PKI and
# token minting, the upstream and static-issuer nginx, process tracking by PID (+ start time), quiet-waits.
# Differences: certbound is started from this checkout as `node bin/certbound.js start -c FILE` (no npx wrapper:
# the tracked root PID is the gateway itself), every path lives under bench/results/, ports are overridable.
#
# Caller sets before sourcing (all optional): OUTDIR (this run's results dir), LOG (run log file).
# Only 127.0.0.1 is ever targeted; every process started is recorded and stopped by its PID.

BENCH_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_HOME/.." && pwd)
WORK=${BENCH_WORK:-$BENCH_HOME/results/work} # PKI + tokens, reused between runs (FRESH_PKI=1 regenerates)
PKI=$WORK/pki
JWT=$WORK/jwt
STAMP=${STAMP:-$(date -u +%Y%m%dT%H%M%SZ)}
OUTDIR=${OUTDIR:-$BENCH_HOME/results/$STAMP}
RUN=$OUTDIR/run # rendered configs, process outputs
LOG=${LOG:-$OUTDIR/run.log}
SUT_CPU=${SUT_CPU:-0}
RIG_CPU=${RIG_CPU:-1}
GW_START_S=${GW_START_S:-30}
# node flags certbound's launchers (Dockerfile, npm start) use; the node options a script passes come after them and win
GW_NODE_FLAGS=${GW_NODE_FLAGS---max-semi-space-size=8 --openssl-config=$ROOT/bin/openssl.cnf}
# what the launchers run node through: jemalloc when installed (CERTBOUND_MALLOC=system, or GW_LAUNCHER='', for glibc's)
GW_LAUNCHER=${GW_LAUNCHER-sh $ROOT/bin/with-jemalloc.sh}

UP_PORT=${UP_PORT:-9000}
ISS_PORT=${ISS_PORT:-9449}
INTRO_PORT=${INTRO_PORT:-9450}
RL_REDIS_PORT=${RL_REDIS_PORT:-9479} # redis-server for rate-limiting policy redis (kind full-rlr)
STORE_REDIS_PORT=${STORE_REDIS_PORT:-} # redis-server behind gateway.store.redis (kinds full-sr, dpop-sr); empty: a free port
# Every token is minted with this issuer; S2/S4 check it, S5's static discovery document states it.
ISS=https://127.0.0.1:$ISS_PORT
AUD=https://api.example.test # = mint-token.mjs' default aud, also checked by S2/S4
INTRO_CLIENT_ID=certbound-bench
INTRO_CLIENT_SECRET=bench-secret-$(date +%s%N | sha256sum | cut -c1-16)

mkdir -p "$OUTDIR" "$RUN/nginx-tmp"
NCPU=$(nproc)

STARTED=() # PIDs this script started (upstream, issuer, proxies), stopped in reverse order
GW_ROOT='' GW_TREE=() GW_ERR='' ISS_PID='' ISS_PIDS='' INTRO_PID='' UP_PID='' UP_PIDS='' RL_REDIS_PID='' STORE_REDIS_PID=''

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
die() { log "ERROR: $*"; exit 1; }

stop_pid() { # stop one process we started, wait up to 5 s, then SIGKILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
  log "pid $pid did not stop on TERM, sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
forget_pid() { # drop a PID from STARTED (after stopping it)
  local keep=() p
  for p in ${STARTED[@]+"${STARTED[@]}"}; do [[ $p != "$1" ]] && keep+=("$p"); done
  STARTED=(${keep[@]+"${keep[@]}"})
}
stop_all() {
  [[ -n $GW_ROOT ]] && stop_gateway
  local i
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED[i]}"; done
  STARTED=()
}
install_traps() {
  trap 'rc=$?; stop_all; exit $rc' EXIT
  trap 'exit 130' INT TERM
}

wait_port() { # wait_port PORT PID [TENTHS=100]
  for _ in $(seq "${3:-100}"); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pids_of() { echo "$1" $(pgrep -P "$1" || true) | tr ' ' ','; } # a process + its direct children
render() { # render TEMPLATE OUT [PORT]
  sed -e "s#@RUN@#$RUN#g; s#@PKI@#$PKI#g; s#@JWT_KEY@#$JWT/pub.pem#g; s#@JWT_PUB@#$JWT/pub.pem#g; s#@ISS@#$ISS#g; s#@UP_PORT@#$UP_PORT#g; s#@PORT@#${3:-}#g" "$1" >"$2"
}
pin() { local cpus=$1 p; for p in ${2//,/ }; do taskset -a -pc "$cpus" "$p" >/dev/null; done; }

need_tools() {
  local c
  for c in nginx haproxy openssl curl taskset node; do command -v "$c" >/dev/null || die "$c missing: run bench/setup.sh"; done
  [[ -d $BENCH_HOME/node_modules/autocannon && -d $BENCH_HOME/node_modules/jose ]] || die "bench/node_modules missing: run bench/setup.sh"
  ((SUT_CPU < NCPU && RIG_CPU < NCPU)) || die "SUT_CPU/RIG_CPU out of range (nproc=$NCPU)"
}

# ---------------------------------------------------------------- build
# The benchmark measures dist/: rebuild it when src/ or plugins/ are newer (BENCH_BUILD=auto, default),
# always (BENCH_BUILD=1) or never (BENCH_BUILD=0). A failing tsc still emits JavaScript: that is logged, and the
# run goes on with what was emitted (the functional checks of each scenario catch a broken gateway).
ensure_build() {
  local mode=${BENCH_BUILD:-auto} stale=0
  [[ -f $ROOT/dist/src/cli.js ]] || stale=1
  if [[ $mode == auto && $stale == 0 ]] && [[ -n $(find "$ROOT/src" "$ROOT/plugins" -name '*.ts' -newer "$ROOT/dist/src/cli.js" -print -quit 2>/dev/null) ]]; then stale=1; fi
  [[ $mode == 1 ]] && stale=1
  [[ $mode == 0 ]] && stale=0
  if ((stale)); then
    [[ -d $ROOT/node_modules ]] || { log "no node_modules in $ROOT: npm ci"; (cd "$ROOT" && timeout -k 10 600 npm ci --no-audit --no-fund) >>"$LOG" 2>&1 || die "npm ci failed in $ROOT (see $LOG)"; }
    log "building certbound (tsc -p tsconfig.build.json)"
    if ! (cd "$ROOT" && timeout -k 10 300 node_modules/.bin/tsc -p tsconfig.build.json) >"$RUN/build.log" 2>&1; then
      log "WARNING: the build reported errors (see $RUN/build.log); measuring what tsc emitted: $(head -3 "$RUN/build.log" | tr '\n' ' ' | cut -c1-300)"
    fi
  fi
  [[ -f $ROOT/dist/src/cli.js ]] || die "dist/src/cli.js missing after the build (see $RUN/build.log)"
}

# ---------------------------------------------------------------- PKI + tokens
make_pki_tokens() {
  if [[ ! -f $PKI/client1.crt || ${FRESH_PKI:-0} == 1 ]]; then
    rm -rf "$PKI"; "$BENCH_HOME/pki.sh" "$PKI" >>"$LOG" 2>&1 || die "pki.sh failed"
  fi
  node "$BENCH_HOME/mint-token.mjs" --out "$JWT" --cert "$PKI/client1.crt" --cert2 "$PKI/client2.crt" --iss "$ISS" --aud "$AUD" >>"$LOG" 2>&1 || die "mint-token failed"
  node "$BENCH_HOME/mint-dpop.mjs" --out "$JWT" --iss "$ISS" --aud "$AUD" >>"$LOG" 2>&1 || die "mint-dpop failed"
  log "PKI in $PKI, tokens in $JWT (iss $ISS, aud $AUD)"
}

# ---------------------------------------------------------------- upstream nginx (rig core)
start_upstream() {
  # a bench run of another checkout may hold the port: never measure (or stop) someone else's nginx
  port_free "$UP_PORT" || die "port $UP_PORT on 127.0.0.1 is already in use (another bench run?): set UP_PORT (and ISS_PORT) to free ports"
  render "$BENCH_HOME/conf/upstream-nginx.conf" "$RUN/upstream.conf"
  taskset -c "$RIG_CPU" nginx -c "$RUN/upstream.conf" -e "$RUN/upstream-error.log" >>"$LOG" 2>&1 &
  UP_PID=$!; STARTED+=("$UP_PID")
  wait_port "$UP_PORT" "$UP_PID" || die "upstream nginx did not start (see $RUN/upstream-error.log)"
  sleep 0.2
  UP_PIDS=$(pids_of "$UP_PID")
  log "upstream nginx pid $UP_PID (workers: $(pgrep -P "$UP_PID" | tr '\n' ' ')) on 127.0.0.1:$UP_PORT, cpu$RIG_CPU"
}

# ---------------------------------------------------------------- static OpenID issuer (discovery + JWKS) for openid-connect
start_issuer() {
  [[ -n $ISS_PID ]] && return 0
  port_free "$ISS_PORT" || { GW_ERR="port $ISS_PORT on 127.0.0.1 is already in use (another bench run?): set ISS_PORT to a free port"; return 1; }
  mkdir -p "$RUN/issuer"
  cp "$JWT/jwks.json" "$RUN/issuer/jwks.json"
  cat >"$RUN/issuer/openid-configuration.json" <<JSON
{
  "issuer": "$ISS",
  "jwks_uri": "$ISS/jwks.json",
  "authorization_endpoint": "$ISS/authorize",
  "token_endpoint": "$ISS/token",
  "introspection_endpoint": "https://127.0.0.1:$INTRO_PORT/introspect",
  "response_types_supported": ["code"],
  "subject_types_supported": ["public"],
  "id_token_signing_alg_values_supported": ["ES256"],
  "grant_types_supported": ["client_credentials"],
  "token_endpoint_auth_methods_supported": ["tls_client_auth"],
  "tls_client_certificate_bound_access_tokens": true
}
JSON
  render "$BENCH_HOME/conf/s5-issuer-nginx.conf" "$RUN/issuer.conf" "$ISS_PORT"
  : >"$RUN/issuer-access.log"
  taskset -c "$RIG_CPU" nginx -c "$RUN/issuer.conf" -e "$RUN/issuer-error.log" >>"$LOG" 2>&1 &
  ISS_PID=$!; STARTED+=("$ISS_PID")
  wait_port "$ISS_PORT" "$ISS_PID" || { GW_ERR="the static issuer nginx did not start (see $RUN/issuer-error.log)"; return 1; }
  sleep 0.2
  ISS_PIDS=$(pids_of "$ISS_PID")
  local d
  d=$(curl -sS --max-time 5 --cacert "$PKI/ca.crt" "$ISS/.well-known/openid-configuration" 2>&1) || true
  grep -q "\"issuer\": \"$ISS\"" <<<"$d" || { GW_ERR="the static issuer does not serve its discovery document: ${d:0:200}"; return 1; }
  log "static issuer $ISS (nginx pid $ISS_PID on cpu$RIG_CPU): discovery + JWKS"
}

# ---------------------------------------------------------------- RFC 7662 introspection endpoint (S6)
start_introspector() {
  [[ -n $INTRO_PID ]] && return 0
  taskset -c "$RIG_CPU" node "$BENCH_HOME/introspect-server.mjs" --port "$INTRO_PORT" --pki "$PKI" --jwt-pub "$JWT/pub.pem" \
    --iss "$ISS" --client-id "$INTRO_CLIENT_ID" --client-secret "$INTRO_CLIENT_SECRET" >>"$RUN/introspect.out" 2>&1 &
  INTRO_PID=$!; STARTED+=("$INTRO_PID")
  wait_port "$INTRO_PORT" "$INTRO_PID" || { GW_ERR="the introspection server did not start (see $RUN/introspect.out)"; return 1; }
  log "introspection endpoint https://127.0.0.1:$INTRO_PORT/introspect (node pid $INTRO_PID on cpu$RIG_CPU)"
}
intro_stats() { curl -sS --max-time 3 --cacert "$PKI/ca.crt" "https://127.0.0.1:$INTRO_PORT/stats" 2>/dev/null || echo '{}'; }

# ---------------------------------------------------------------- certbound
# Config kinds: full (openid-connect strict PoP + require-scopes + request-transformer), intro (token-introspection
# strict binding, warm cache + require-scopes + request-transformer), plain (mTLS proxy, no plugin).
# write_certbound_config KIND DIR PORT ADMIN_PORT WORKERS
start_rl_redis() { # a redis-server on the rig core for rate-limiting policy redis: no persistence, loopback only
  [[ -n $RL_REDIS_PID ]] && return 0
  command -v redis-server >/dev/null || { GW_ERR="redis-server missing (bash scripts/system-deps.sh installs it)"; return 1; }
  port_free "$RL_REDIS_PORT" || { GW_ERR="port $RL_REDIS_PORT on 127.0.0.1 is already in use"; return 1; }
  taskset -c "$RIG_CPU" redis-server --port "$RL_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no >"$RUN/rl-redis.log" 2>&1 &
  RL_REDIS_PID=$!; STARTED+=("$RL_REDIS_PID")
  wait_port "$RL_REDIS_PORT" "$RL_REDIS_PID" || { GW_ERR="redis-server did not start (see $RUN/rl-redis.log)"; return 1; }
  log "redis-server pid $RL_REDIS_PID on 127.0.0.1:$RL_REDIS_PORT, cpu$RIG_CPU (rate-limiting policy redis)"
}

free_port() { node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'; }
# issue 13: the redis-server behind gateway.store.redis (S5r, S5dr), on the rig core with the upstream (its CPU is
# watched as "store", not counted as the proxy's), no persistence, loopback only; kept for the whole run, stopped by
# its PID with everything else (stop_all). STORE_REDIS_PORT overrides the free port picked here.
start_store_redis() {
  [[ -n $STORE_REDIS_PID ]] && return 0
  command -v redis-server >/dev/null || { GW_ERR="redis-server missing (bash scripts/system-deps.sh installs it)"; return 1; }
  [[ -n $STORE_REDIS_PORT ]] || STORE_REDIS_PORT=$(free_port)
  port_free "$STORE_REDIS_PORT" || { GW_ERR="port $STORE_REDIS_PORT on 127.0.0.1 is already in use (set STORE_REDIS_PORT)"; return 1; }
  taskset -c "$RIG_CPU" redis-server --port "$STORE_REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --protected-mode no --dir "$RUN" >"$RUN/store-redis.log" 2>&1 &
  STORE_REDIS_PID=$!; STARTED+=("$STORE_REDIS_PID")
  wait_port "$STORE_REDIS_PORT" "$STORE_REDIS_PID" || { GW_ERR="redis-server did not start (see $RUN/store-redis.log)"; return 1; }
  log "redis-server pid $STORE_REDIS_PID on 127.0.0.1:$STORE_REDIS_PORT, cpu$RIG_CPU (gateway.store.redis)"
}

# the plugins after token validation, the same in every certbound chain: the scope S2 checks, the three headers it injects
chain_tail() {
  cat <<YAML
          - name: require-scopes
            config: { scopes: [system-access] }
          - name: request-transformer
            config:
              add:
                headers:
                  - "x-credential-sub:\$(credential.sub)"
                  - "x-credential-scope:\$(credential.scope)"
                  - "x-credential-client-id:\$(credential.client_id)"
YAML
}
write_certbound_config() {
  local kind=$1 dir=$2 port=$3 admin=$4 workers=${5:-0}
  rm -rf "$dir"; mkdir -p "$dir/certs"
  cp "$PKI/server.crt" "$PKI/server.key" "$PKI/ca.crt" "$dir/certs/"
  {
    cat <<YAML
# certbound bench config ($kind), written by bench/lib.sh. Access log (JSON lines on stdout, sent to a file)
# and metrics are on, as by default; the anchors (nginx, HAProxy) have access logging off.
_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:$port
      tls:
        cert: certs/server.crt
        key: certs/server.key
        client_ca: certs/ca.crt
        client_certificate: require
  admin_listen: 127.0.0.1:$admin
  trusted_certificates: certs/ca.crt      # the static issuer's and the introspection endpoint's TLS certificate
  access_log: true
  log_level: info
YAML
    ((workers > 0)) && echo "  workers: $workers"
    # issue 13: the same gateway with its shared state (token cache, DPoP jti replay, revocations) in Redis
    [[ $kind == full-sr || $kind == dpop-sr ]] && cat <<YAML
  store:
    redis: { url: "redis://127.0.0.1:$STORE_REDIS_PORT", key_prefix: "certbound-bench:" }
YAML
    cat <<YAML
services:
  - name: bench-upstream
    url: http://127.0.0.1:$UP_PORT
YAML
    [[ -n ${BENCH_RETRIES:-} ]] && echo "    retries: $BENCH_RETRIES"
    [[ -n ${BENCH_CONNECT_HOLD:-} ]] && echo "    connect_failure_hold: $BENCH_CONNECT_HOLD"
    cat <<YAML
    routes:
      - name: bench-route
        paths: [/]
        strip_path: false
YAML
    case $kind in
      dpop|dpop-sr) cat <<YAML
        plugins:
          - name: openid-connect
            config:
              issuer: $ISS          # discovery -> jwks_uri (static nginx, conf/s5-issuer-nginx.conf)
              auth_methods: [bearer]
              proof_of_possession_dpop: strict          # RFC 9449: "Authorization: DPoP" + a proof per request, cnf.jkt
              dpop_algorithms: [ES256]
              audience_required: [$AUD]
              algorithms: [ES256]
              enforce_access_token_typ: true
YAML
        chain_tail
      ;;
      full|full-rl|full-rlr|full-sr) cat <<YAML
        plugins:
          - name: openid-connect
            config:
              issuer: $ISS          # discovery -> jwks_uri (static nginx, conf/s5-issuer-nginx.conf)
              auth_methods: [bearer]
              proof_of_possession_mtls: strict          # cnf."x5t#S256" must match the client certificate
              audience_required: [$AUD]
              algorithms: [ES256]                       # what S2 (HAProxy) accepts
              enforce_access_token_typ: true            # typ at+jwt, as S2 checks
YAML
        chain_tail
        # issue 15: the same chain plus rate-limiting per verified client, a limit the load never reaches
        [[ $kind == full-rl ]] && cat <<YAML
          - name: rate-limiting
            config: { minute: 1000000, limit_by: credential, policy: local }
YAML
        [[ $kind == full-rlr ]] && cat <<YAML
          - name: rate-limiting
            config: { minute: 1000000, limit_by: credential, policy: redis, redis: { host: 127.0.0.1, port: $RL_REDIS_PORT } }
YAML
      ;;
      intro) cat <<YAML
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: https://127.0.0.1:$INTRO_PORT/introspect
              client_id: $INTRO_CLIENT_ID
              client_secret: \${{ env "CERTBOUND_BENCH_INTRO_SECRET" }}
              certificate_binding: strict
              ttl: 3600                                 # warm cache: the IdP is asked once per token
YAML
        chain_tail
      ;;
      plain) ;;
      *) die "unknown certbound config kind $kind" ;;
    esac
  } >"$dir/gateway.yml"
}

validate_certbound_config() { # FILE -> 0, or 1 with GW_ERR
  local out
  if out=$(cd "$ROOT" && CERTBOUND_BENCH_INTRO_SECRET=$INTRO_CLIENT_SECRET timeout 60 node bin/certbound.js validate -c "$1" 2>&1); then
    log "  $(tail -1 <<<"$out" | cut -c1-300)"
    return 0
  fi
  GW_ERR="certbound validate failed: $(tr '\n' ' ' <<<"$out" | cut -c1-600)"
  return 1
}

pstart() { # PID -> its start time (clock ticks since boot); nothing if gone or a zombie
  local st; st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
  set -- $st; [[ ${1:-Z} == Z ]] || echo "${20}"
  return 0
}
ptree() { # PID -> PID and all its descendants, parents first
  local q=("$1") out=() p
  while ((${#q[@]})); do
    p=${q[0]}; q=("${q[@]:1}")
    [[ -d /proc/$p ]] || continue
    out+=("$p"); q+=($(pgrep -P "$p" || true))
  done
  echo "${out[*]}"
}
gw_track() { # remember PID and its descendants as part of the certbound tree
  local p st e
  for p in $(ptree "$1"); do
    st=$(pstart "$p"); [[ -n $st ]] || continue
    for e in ${GW_TREE[@]+"${GW_TREE[@]}"}; do [[ $e == "$p:$st" ]] && continue 2; done
    GW_TREE+=("$p:$st")
  done
  return 0
}
gw_alive() { # the tracked processes that are still alive (same PID and start time)
  local e
  for e in ${GW_TREE[@]+"${GW_TREE[@]}"}; do [[ $(pstart "${e%%:*}") == "${e#*:}" ]] && echo "${e%%:*}"; done
  return 0
}
gw_nodes() { local n=0 p; for p in $(gw_alive); do [[ $(readlink "/proc/$p/exe" 2>/dev/null) == */node ]] && n=$((n + 1)); done; echo $n; }
stop_gateway() { # TERM every process of the tree (primary first: it stops its workers), KILL what is left after 10 s
  local p live
  [[ -n $GW_ROOT ]] || return 0
  gw_track "$GW_ROOT"
  kill -TERM "$GW_ROOT" 2>/dev/null || true
  for _ in $(seq 30); do live=$(gw_alive); [[ -z $live || $live == "$GW_ROOT" ]] && break; sleep 0.1; done
  for p in $(gw_alive); do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 100); do
    for p in $(gw_alive); do gw_track "$p"; done # e.g. a worker forked meanwhile
    live=$(gw_alive); [[ -z $live ]] && break
    sleep 0.1
  done
  live=$(gw_alive)
  if [[ -n $live ]]; then
    log "certbound pid(s) $(echo $live) did not stop on TERM, sending KILL"
    for p in $live; do kill -KILL "$p" 2>/dev/null || true; done
  fi
  wait "$GW_ROOT" 2>/dev/null || true
  GW_ROOT='' GW_TREE=()
}

# start_certbound LABEL KIND PORT ADMIN_PORT WORKERS CPUS [node options...] -> GW_ROOT, GW_TREE; or 1 with GW_ERR
start_certbound() {
  local label=$1 kind=$2 port=$3 admin=$4 workers=$5 cpus=$6; shift 6
  local dir=$RUN/${label,,} out=$RUN/${label,,}.out t0 rc
  GW_ERR=''
  port_free "$port" || { GW_ERR="port $port on 127.0.0.1 is already in use"; return 1; }
  port_free "$admin" || { GW_ERR="admin port $admin on 127.0.0.1 is already in use"; return 1; }
  if [[ $kind == full* || $kind == dpop* ]]; then start_issuer || return 1; fi
  if [[ $kind == *-sr ]]; then start_store_redis || return 1; fi
  if [[ $kind == full-rlr ]]; then start_rl_redis || return 1; fi
  if [[ $kind == intro ]]; then start_introspector || return 1; fi
  write_certbound_config "$kind" "$dir" "$port" "$admin" "$workers"
  if [[ ${BENCH_VALIDATE:-1} == 1 ]]; then validate_certbound_config "$dir/gateway.yml" || return 1; fi
  GW_LAUNCH_MS=$(date +%s%3N)
  # shellcheck disable=SC2086 # GW_NODE_FLAGS: zero or more flags, split on spaces
  # GW_ENV: zero or more NAME=VALUE for the gateway's environment (ab.sh's AB_ENV_A / AB_ENV_B)
  # shellcheck disable=SC2086
  (cd "$ROOT" && CERTBOUND_BENCH_INTRO_SECRET=$INTRO_CLIENT_SECRET NODE_ENV=production exec env ${GW_ENV:-} taskset -c "$cpus" $GW_LAUNCHER node $GW_NODE_FLAGS "$@" bin/certbound.js start -c "$dir/gateway.yml") >"$out" 2>&1 &
  GW_ROOT=$!; GW_TREE=()
  gw_track "$GW_ROOT"
  t0=$SECONDS
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    gw_track "$GW_ROOT"
    if ! kill -0 "$GW_ROOT" 2>/dev/null; then
      rc=0; wait "$GW_ROOT" 2>/dev/null || rc=$?
      GW_ERR="certbound exited (code $rc) before accepting on 127.0.0.1:$port: $(tail -4 "$out" | tr '\n' ' ' | cut -c1-500)"; GW_ROOT=''; return 1
    fi
    if ((SECONDS - t0 >= GW_START_S)); then GW_ERR="127.0.0.1:$port not accepting within ${GW_START_S}s: $(tail -4 "$out" | tr '\n' ' ' | cut -c1-500)"; return 1; fi
    sleep 0.2
  done
  sleep 0.5; gw_track "$GW_ROOT"
  if ((workers > 0)); then # wait for the workers to be up (each one listens; the primary only coordinates)
    for _ in $(seq 50); do (($(gw_nodes) > workers)) && break; sleep 0.2; gw_track "$GW_ROOT"; done
    sleep 1; gw_track "$GW_ROOT"
    if (($(gw_nodes) <= workers)); then
      GW_ERR="certbound accepted gateway.workers: $workers but runs $(gw_nodes) process(es): no multi-process mode, nothing to measure"
      return 1
    fi
  fi
  log "$label certbound ($kind) listening on 127.0.0.1:$port after $((SECONDS - t0))s: pid(s) $(gw_alive | paste -sd' ') on cpu $cpus (config $dir/gateway.yml, output $out)"
}
gw_pids_csv() { gw_alive | paste -sd, -; }

# ---------------------------------------------------------------- machine quietness (shared VM)
busy_pct() { # CPU busy over 0.5 s, in % of one core (all cores summed)
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 0.5
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$NCPU" 'BEGIN{split(a,x," "); split(b,y," "); t=y[2]-x[2]; if (t<=0) t=1; printf "%d", (y[1]-x[1])*100*n/t}'
}
QUIET_MAX=${QUIET_MAX:-15}
QUIET_BUDGET=${QUIET_BUDGET:-45}
wait_quiet() { # wait until other work on the machine calms down, within the remaining QUIET_BUDGET seconds
  local t0 b waited
  ((QUIET_BUDGET > 0)) || return 0
  b=$(busy_pct)
  ((b < QUIET_MAX)) && return 0
  t0=$(date +%s.%N)
  while ((b >= QUIET_MAX)) && awk -v t0="$t0" -v left="$QUIET_BUDGET" -v now="$(date +%s.%N)" 'BEGIN{exit !(now - t0 < left)}'; do
    sleep 1; b=$(busy_pct)
  done
  waited=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN{printf "%.1f", now - t0}')
  QUIET_BUDGET=$(awk -v l="$QUIET_BUDGET" -v w="$waited" 'BEGIN{l -= w; if (l < 0) l = 0; printf "%d", l}')
  if ((b >= QUIET_MAX)); then log "  machine busy (${b}% of a core), quiet budget spent: measuring anyway"
  else log "  waited ${waited}s for the machine to be quiet (busy ${b}%, quiet budget left ${QUIET_BUDGET}s)"; fi
  return 0
}
