#!/usr/bin/env bash
# Copied from ../shared/anchors-bench/verify-chain.sh (certbound reference harness); adapted: temp dir,
# contract reference (issue 3), extra PLAIN mode for S5p.
# Functional check of a full-chain proxy (mTLS + cert-bound JWT) on 127.0.0.1:PORT, with curl.
#
# usage: verify-chain.sh PORT [LABEL]        (env: PKI=/tmp/bench/pki JWT=/tmp/bench/jwt VERIFY_MODE=anchor)
# Exit 0 if every check passes. Expects tokens from mint-token.mjs and certs from pki.sh.
# VERIFY_MODE=anchor (default; S2-S4): every rejection is 401 `WWW-Authenticate: Bearer error="invalid_token"`,
#   as the anchors were specified.
# VERIFY_MODE=contract (S5/S5c/S6, certbound): the statuses of issue 3 (RFC 6750): no token -> 401
#   `Bearer` challenge without an error code; missing scope -> 403 `error="insufficient_scope"`; every other
#   rejection 401 `error="invalid_token"`. Challenge parameters may come in any order (realm first is fine).
# VERIFY_MODE=plain (S5p, certbound as a plain mTLS proxy): client1 -> 200 from the upstream; no certificate
#   and a certificate of an unrelated CA -> TLS reject. No token checks.
set -uo pipefail
PORT=${1:?usage: verify-chain.sh PORT [LABEL]}
LABEL=${2:-127.0.0.1:$PORT}
MODE=${VERIFY_MODE:-anchor}
[[ $MODE == anchor || $MODE == contract || $MODE == plain ]] || { echo "verify-chain: VERIFY_MODE must be anchor, contract or plain (got $MODE)"; exit 2; }
PKI=${PKI:-/tmp/bench/pki}
JWT=${JWT:-/tmp/bench/jwt}
URL=https://localhost:$PORT
TMP=$(mktemp -d "${TMPDIR:-/tmp}/certbound-verify.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0

# req NAME CERT TOKENFILE PATH [extra curl args...] -> sets CODE, BODY, HDRS
req() {
  local cert=$1 tok=$2 path=$3; shift 3
  local args=(-sS --max-time 5 --cacert "$PKI/ca.crt" -o "$TMP/body" -D "$TMP/hdrs" -w '%{http_code}')
  [[ $cert != - ]] && args+=(--cert "$PKI/$cert.crt" --key "$PKI/$cert.key")
  [[ $tok != - ]] && args+=(-H "Authorization: Bearer $(cat "$JWT/$tok.jwt")")
  CODE=$(curl "${args[@]}" "$@" "$URL$path" 2>"$TMP/err") || true
  BODY=$(cat "$TMP/body" 2>/dev/null || true)
  HDRS=$(cat "$TMP/hdrs" 2>/dev/null || true)
}
check() { # check DESCRIPTION CONDITION-RESULT(0/1) DETAIL
  if [[ $2 == 0 ]]; then pass=$((pass + 1)); printf '  ok    %s\n' "$1"
  else fail=$((fail + 1)); printf '  FAIL  %s  (%s)\n' "$1" "$3"; fi
}
challenge() { grep -i '^www-authenticate:' <<<"$HDRS" | head -1 | tr -d '\r'; }
if [[ $MODE == anchor ]]; then
  is401() { [[ $CODE == 401 ]] && grep -qi '^www-authenticate: Bearer error="invalid_token"' <<<"$HDRS"; echo $?; }
  isNoToken() { is401; }
  isNoScope() { is401; }
  NOTOKEN_DESC="no token -> 401 invalid_token"
  NOSCOPE_DESC="token without scope system-access -> 401"
else
  is401() { [[ $CODE == 401 ]] && challenge | grep -qiE '^www-authenticate: *Bearer .*error="invalid_token"'; echo $?; }
  isNoToken() { [[ $CODE == 401 ]] && challenge | grep -qiE '^www-authenticate: *Bearer( |$)' && ! challenge | grep -qi 'error='; echo $?; }
  isNoScope() { [[ $CODE == 403 ]] && challenge | grep -qiE '^www-authenticate: *Bearer .*error="insufficient_scope"'; echo $?; }
  NOTOKEN_DESC="no token -> 401 Bearer challenge without error code (RFC 6750)"
  NOSCOPE_DESC="token without scope system-access -> 403 insufficient_scope"
fi
# a rejected TLS client: handshake failure (curl 000) or nginx' "400 SSL certificate error"
isTlsReject() { [[ $CODE == 000 || $CODE == 400 ]]; echo $?; }

echo "verify-chain: $LABEL (mode $MODE)"
if [[ $MODE == plain ]]; then
  req client1 - /echo
  check "client1 cert, no token -> 200 from the upstream" "$([[ $CODE == 200 ]] && grep -q '^x-credential-sub=$' <<<"$BODY"; echo $?)" "got $CODE $(tr '\n' ' ' <<<"$BODY" | cut -c1-120)"
  req other-client - /
  check "cert from unrelated CA (same subject as client1) -> TLS reject" "$(isTlsReject)" "got $CODE"
  req - - /
  check "no client cert -> TLS reject" "$(isTlsReject)" "got $CODE"
  echo "verify-chain: $LABEL: $pass passed, $fail failed"
  [[ $fail == 0 ]]; exit
fi
req client1 token /echo
check "client1 cert + its token -> 200" "$([[ $CODE == 200 ]]; echo $?)" "got $CODE"
check "  upstream got x-credential-sub/scope/client-id" \
  "$(grep -q '^x-credential-sub=client1-service-account$' <<<"$BODY" && grep -q '^x-credential-scope=system-access$' <<<"$BODY" && grep -q '^x-credential-client-id=client1$' <<<"$BODY"; echo $?)" "$(tr '\n' ' ' <<<"$BODY" | cut -c1-160)"
req client1 token /echo -H 'x-credential-sub: evil' -H 'x-credential-scope: admin'
check "  client-sent x-credential-* headers are overwritten" "$(grep -q '^x-credential-sub=client1-service-account$' <<<"$BODY" && ! grep -q 'evil\|admin' <<<"$BODY"; echo $?)" "$(tr '\n' ' ' <<<"$BODY" | cut -c1-160)"
req client2 token /
check "client2 cert + client1's token -> 401 invalid_token" "$(is401)" "got $CODE $(challenge)"
req client1 - /
check "$NOTOKEN_DESC" "$(isNoToken)" "got $CODE $(challenge)"
req client1 token-tampered /
check "tampered payload (signature kept) -> 401" "$(is401)" "got $CODE $(challenge)"
req client1 token-wrongkey /
check "signed by unknown key -> 401" "$(is401)" "got $CODE $(challenge)"
req client1 token-expired /
check "expired token -> 401" "$(is401)" "got $CODE $(challenge)"
req client1 token-noscope /
check "$NOSCOPE_DESC" "$(isNoScope)" "got $CODE $(challenge)"
req client2 token-client2 /
check "client2 cert + token bound to client2 -> 200" "$([[ $CODE == 200 ]]; echo $?)" "got $CODE"
req other-client token /
check "cert from unrelated CA (same subject as client1) -> TLS reject" "$(isTlsReject)" "got $CODE"
req - token /
check "no client cert -> TLS reject" "$(isTlsReject)" "got $CODE"
echo "verify-chain: $LABEL: $pass passed, $fail failed"
[[ $fail == 0 ]]
