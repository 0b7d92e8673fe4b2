#!/usr/bin/env node
// DPoP-bound tokens for the S5d / S5dr scenarios (issue 14): ES256 `at+jwt` access tokens signed with the key
// mint-token.mjs wrote (so the static issuer's JWKS verifies them), bound to a DPoP key by `cnf.jkt`
// (RFC 9449 §6.1: base64url SHA-256 JWK thumbprint, RFC 7638) instead of a certificate thumbprint.
// Run after mint-token.mjs (bench/lib.sh make_pki_tokens does).
//
// usage: node mint-dpop.mjs --out DIR [--iss URL] [--aud URL] [--sub S] [--client-id C] [--scope S]
// Reads DIR/signing-key.pem and DIR/jwks.json; writes to DIR:
//   dpop-key.pem       the client's DPoP key (EC P-256, PKCS#8, mode 0600): the load generator signs proofs with it
//   dpop-key2.pem      another DPoP key: a proof made with it must be refused for token-dpop.jwt
//   token-dpop.jwt     typ at+jwt, scope system-access, cnf.jkt = thumbprint of dpop-key.pem's public key
import { SignJWT, importPKCS8 } from 'jose'
import { createHash, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: '/tmp/bench/jwt' },
    iss: { type: 'string', default: 'https://127.0.0.1:9449' },
    aud: { type: 'string', default: 'https://api.example.test' },
    sub: { type: 'string', default: 'client1-service-account' },
    'client-id': { type: 'string', default: 'client1' },
    scope: { type: 'string', default: 'system-access' },
  },
})

/** RFC 7638 thumbprint of an EC public key: the required members in lexicographic order, no whitespace */
function jkt (keyObject) {
  const { crv, kty, x, y } = createPublicKey(keyObject).export({ format: 'jwk' })
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url')
}
function newKey (file) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  rmSync(file, { force: true })
  writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  return privateKey
}

const signingPem = readFileSync(join(a.out, 'signing-key.pem'), 'utf8')
const signingKey = await importPKCS8(signingPem, 'ES256')
const kid = JSON.parse(readFileSync(join(a.out, 'jwks.json'), 'utf8')).keys[0].kid
const k1 = newKey(join(a.out, 'dpop-key.pem'))
newKey(join(a.out, 'dpop-key2.pem'))

const now = Math.floor(Date.now() / 1000)
const token = await new SignJWT({ client_id: a['client-id'], scope: a.scope, cnf: { jkt: jkt(k1) } })
  .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
  .setIssuer(a.iss).setAudience(a.aud).setSubject(a.sub)
  .setIssuedAt(now).setExpirationTime(now + 10 * 365 * 24 * 3600).setJti(randomUUID())
  .sign(signingKey)
writeFileSync(join(a.out, 'token-dpop.jwt'), token + '\n')
console.log(`mint-dpop: token-dpop.jwt bound to dpop-key.pem (cnf.jkt ${jkt(k1)}), dpop-key2.pem unbound, in ${a.out}`)
