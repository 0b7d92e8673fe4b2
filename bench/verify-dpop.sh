#!/usr/bin/env bash
# Functional check of certbound's DPoP chain (S5d / S5dr, issue 14) on 127.0.0.1:PORT, with curl, before any load:
# proofs are made by `certbound dpop` (this checkout's CLI) with the keys and token of mint-dpop.mjs.
#
# usage: verify-dpop.sh PORT [LABEL]        (env: PKI=... JWT=... as verify-chain.sh)
# Exit 0 if every check passes:
#   a good request (token-dpop.jwt + a fresh proof by dpop-key.pem) -> 200, the three headers upstream, a client-sent
#   x-credential-sub overwritten; the same proof again (replay) -> 401 DPoP error="invalid_dpop_proof"; a proof by
#   another key (dpop-key2.pem) -> 401 error="invalid_token"; the token as Bearer (downgrade) -> 401; DPoP scheme with
#   no proof -> 401; a proof for another method (htm POST) -> 401 invalid_dpop_proof; a proof whose ath is another
#   token's -> 401 invalid_dpop_proof; a second good request with a new proof -> 200 (the replay check is per jti).
set -uo pipefail
PORT=${1:?usage: verify-dpop.sh PORT [LABEL]}
LABEL=${2:-127.0.0.1:$PORT}
PKI=${PKI:-/tmp/bench/pki}
JWT=${JWT:-/tmp/bench/jwt}
HERE=$(cd "$(dirname "$0")" && pwd)
CLI=$HERE/../bin/certbound.js
URL=https://127.0.0.1:$PORT
TOKEN=$(tr -d '\n' <"$JWT/token-dpop.jwt")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/certbound-verify-dpop.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

proof() { # proof KEYFILE METHOD PATH [TOKEN]
  node "$CLI" dpop --key "$JWT/$1" --method "$2" --url "$URL$3" --token "${4:-$TOKEN}"
}
req() { # req SCHEME PROOF PATH [curl args...] -> CODE BODY HDRS   (PROOF "-": no DPoP header)
  local scheme=$1 prf=$2 path=$3; shift 3
  local args=(-sS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/client1.crt" --key "$PKI/client1.key" -o "$TMP/body" -D "$TMP/hdrs" -w '%{http_code}' -H "Authorization: $scheme $TOKEN")
  [[ $prf != - ]] && args+=(-H "DPoP: $prf")
  CODE=$(curl "${args[@]}" "$@" "$URL$path" 2>"$TMP/err") || true
  BODY=$(cat "$TMP/body" 2>/dev/null || true)
  HDRS=$(tr -d '\r' <"$TMP/hdrs" 2>/dev/null || true)
}
check() { if [[ $2 == 0 ]]; then pass=$((pass + 1)); printf '  ok    %s\n' "$1"; else fail=$((fail + 1)); printf '  FAIL  %s  (%s)\n' "$1" "$3"; fi; }
chal() { grep -i '^www-authenticate:' <<<"$HDRS" | head -1; }
want401() { # DESCRIPTION ERROR-CODE
  local c; c=$(chal)
  [[ $CODE == 401 && ${c,,} == *"dpop "* && $c == *"error=\"$2\""* ]]; check "$1 -> 401 DPoP error=\"$2\"" $? "got $CODE, $c"
}

echo "verify-dpop: $LABEL ($URL)"
P1=$(proof dpop-key.pem GET /echo) || { echo "verify-dpop: certbound dpop failed"; exit 1; }
req DPoP "$P1" /echo -H 'x-credential-sub: admin'
[[ $CODE == 200 && $BODY == *"x-credential-sub=client1-service-account"* && $BODY == *"x-credential-scope=system-access"* && $BODY == *"x-credential-client-id=client1"* ]]
check "good proof + DPoP-bound token -> 200, headers injected, client-sent x-credential-sub overwritten" $? "got $CODE: ${BODY:0:200}"
req DPoP "$P1" /echo
want401 "the same proof again (jti replay)" invalid_dpop_proof
req DPoP "$(proof dpop-key2.pem GET /echo)" /echo
want401 "a proof by another key (jkt mismatch)" invalid_token
req Bearer - /echo
[[ $CODE == 401 ]]; check "the DPoP-bound token as Bearer (downgrade) -> 401" $? "got $CODE, $(chal)"
req DPoP - /echo
[[ $CODE == 401 ]]; check "DPoP scheme without a proof -> 401" $? "got $CODE, $(chal)"
req DPoP "$(proof dpop-key.pem POST /echo)" /echo
want401 "a proof for htm POST on a GET" invalid_dpop_proof
req DPoP "$(proof dpop-key.pem GET /echo "$(tr -d '\n' <"$JWT/token.jwt")")" /echo
want401 "a proof whose ath is another token's" invalid_dpop_proof
req DPoP "$(proof dpop-key.pem GET /echo)" /echo
[[ $CODE == 200 ]]; check "a new proof for the same token -> 200" $? "got $CODE, $(chal)"
echo "verify-dpop: $pass passed, $fail failed"
((fail == 0))
