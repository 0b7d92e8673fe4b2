#!/usr/bin/env bash
# Copied unchanged from ../shared/anchors-bench/pki.sh (certbound reference harness).
# Dev PKI for the certbound benchmarks (NOT for production).
#
# usage: pki.sh DIR
#
# Creates in DIR (all EC P-256, SHA-256):
#   ca.key / ca.crt                 "Example Dev Root CA" (O=Example Org) - trusted client + server CA
#   server.key / server.crt         CN=localhost, SAN DNS:localhost, IP:127.0.0.1, EKU serverAuth
#   server.pem                      server.crt + server.key (HAProxy "crt" bundle)
#   client1.key / client1.crt       CN=client1, O=Example Org, EKU clientAuth, signed by ca
#   client2.key / client2.crt       CN=client2, O=Example Org, different key, same CA
#   other-ca.key / other-ca.crt     "Other Dev Root CA" (O=Other Org) - unrelated, NOT trusted
#   other-client.key / .crt         CN=client1, O=Example Org (look-alike subject!) signed by other-ca
#   thumbprints.txt                 RFC 8705 x5t#S256 (base64url(SHA-256(DER))) of each client cert
set -euo pipefail

DIR=${1:?usage: pki.sh DIR}
mkdir -p "$DIR"
cd "$DIR"
umask 077

DAYS=3650
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# mkca NAME "SUBJECT"
mkca() {
  newkey "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days "$DAYS" -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out "$1.crt"
}

# mkleaf NAME CA "SUBJECT" EXTFILE-CONTENT
mkleaf() {
  local name=$1 ca=$2 subj=$3 ext=$4
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr"
  printf '%s\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
    -sha256 -days "$DAYS" -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

mkca ca "/O=Example Org/CN=Example Dev Root CA"
mkca other-ca "/O=Other Org/CN=Other Dev Root CA"

mkleaf server ca "/O=Example Org/CN=localhost" 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid'

mkleaf client1 ca "/O=Example Org/CN=client1" "$CLIENT_EXT"
mkleaf client2 ca "/O=Example Org/CN=client2" "$CLIENT_EXT"
mkleaf other-client other-ca "/O=Example Org/CN=client1" "$CLIENT_EXT"

cat server.crt server.key > server.pem
rm -f ./*.srl

# RFC 8705 section 3.1: x5t#S256 = base64url(SHA-256(DER(cert))), no padding
thumb() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '='; }
{
  for c in client1 client2 other-client; do printf '%s %s\n' "$c" "$(thumb "$c.crt")"; done
} > thumbprints.txt

chmod 644 ./*.crt thumbprints.txt
chmod 600 ./*.key server.pem

# sanity: chain checks
openssl verify -CAfile ca.crt server.crt client1.crt client2.crt >/dev/null
if openssl verify -CAfile ca.crt other-client.crt >/dev/null 2>&1; then
  echo "pki.sh: other-client unexpectedly verifies against ca.crt" >&2; exit 1
fi
echo "pki.sh: wrote dev PKI to $(pwd)"
cat thumbprints.txt
