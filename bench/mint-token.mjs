#!/usr/bin/env node
// Copied unchanged from ../shared/anchors-bench/mint-token.mjs (certbound reference harness).
// Mint RFC 9068-style ES256 JWT access tokens bound to a client certificate (RFC 8705 cnf.x5t#S256).
//
// usage: node mint-token.mjs --out DIR --cert client1.crt [--cert2 client2.crt] [--reuse-key]
//          [--iss URL (default https://127.0.0.1:9449, the static issuer of S5)] [--aud URL] [--sub S] [--client-id C]
//
// Writes to DIR:
//   signing-key.pem   private key (PKCS#8) - dev only, lets you mint more tokens later (--reuse-key)
//   pub.pem           public key (SPKI PEM)
//   jwks.json         {"keys":[{kty,crv,x,y,kid,alg,use}]}
//   token.jwt         the valid token: typ at+jwt, bound to --cert, scope "system-access"
//   negative tokens for functional checks:
//     token-tampered.jwt  payload changed (scope/sub) but original signature kept
//     token-expired.jwt   exp in the past (validly signed)
//     token-noscope.jwt   scope "other-access" (validly signed)
//     token-client2.jwt   bound to --cert2 (validly signed), if --cert2 given
//     token-wrongkey.jwt  signed by a different, unknown key (same kid)
//   claims.json       the claims of token.jwt (what proxies should inject upstream)
import { SignJWT, generateKeyPair, exportSPKI, exportPKCS8, exportJWK, importPKCS8, importSPKI, calculateJwkThumbprint } from 'jose'
import { X509Certificate, createHash, randomUUID, createPrivateKey, createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const { values: a } = parseArgs({
  options: {
    out: { type: 'string', default: '/tmp/bench/jwt' },
    cert: { type: 'string', default: '/tmp/bench/pki/client1.crt' },
    cert2: { type: 'string' },
    iss: { type: 'string', default: 'https://127.0.0.1:9449' }, // the static issuer S5 discovers (bench/lib.sh passes it explicitly)
    aud: { type: 'string', default: 'https://api.example.test' },
    sub: { type: 'string', default: 'client1-service-account' },
    'client-id': { type: 'string', default: 'client1' },
    scope: { type: 'string', default: 'system-access' },
    'reuse-key': { type: 'boolean', default: false },
  },
})

const ALG = 'ES256'
mkdirSync(a.out, { recursive: true })

/** RFC 8705: base64url(SHA-256(DER)) of the certificate */
function x5tS256 (pemFile) {
  const der = new X509Certificate(readFileSync(pemFile)).raw
  return createHash('sha256').update(der).digest('base64url')
}

const keyFile = join(a.out, 'signing-key.pem')
let privateKey, publicKey
if (a['reuse-key'] && existsSync(keyFile)) {
  const pem = readFileSync(keyFile, 'utf8')
  privateKey = await importPKCS8(pem, ALG, { extractable: true })
  const spki = createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'pem' })
  publicKey = await importSPKI(spki, ALG, { extractable: true })
} else {
  ;({ privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true }))
}

const pubJwk = await exportJWK(publicKey)
const kid = await calculateJwkThumbprint(pubJwk)
const jwks = { keys: [{ ...pubJwk, kid, alg: ALG, use: 'sig' }] }

writeFileSync(keyFile, await exportPKCS8(privateKey), { mode: 0o600 })
writeFileSync(join(a.out, 'pub.pem'), await exportSPKI(publicKey))
writeFileSync(join(a.out, 'jwks.json'), JSON.stringify(jwks, null, 2) + '\n')

const now = Math.floor(Date.now() / 1000)
const FAR = now + 10 * 365 * 24 * 3600 // "far future"

async function mint (overrides = {}, key = privateKey) {
  const claims = {
    client_id: a['client-id'],
    scope: a.scope,
    cnf: { 'x5t#S256': x5tS256(a.cert) },
    ...overrides.claims,
  }
  return new SignJWT(claims)
    .setProtectedHeader({ alg: ALG, typ: 'at+jwt', kid })
    .setIssuer(a.iss)
    .setSubject(a.sub)
    .setAudience(a.aud)
    .setIssuedAt(overrides.iat ?? now)
    .setExpirationTime(overrides.exp ?? FAR)
    .setJti(randomUUID())
    .sign(key)
}

const token = await mint()
writeFileSync(join(a.out, 'token.jwt'), token)

// tampered: change the payload, keep the original signature
{
  const [h, p, s] = token.split('.')
  const payload = JSON.parse(Buffer.from(p, 'base64url'))
  payload.sub = 'admin'
  payload.scope = 'system-access admin'
  const p2 = Buffer.from(JSON.stringify(payload)).toString('base64url')
  writeFileSync(join(a.out, 'token-tampered.jwt'), `${h}.${p2}.${s}`)
}
writeFileSync(join(a.out, 'token-expired.jwt'), await mint({ iat: now - 7200, exp: now - 3600 }))
writeFileSync(join(a.out, 'token-noscope.jwt'), await mint({ claims: { scope: 'other-access' } }))
if (a.cert2) {
  writeFileSync(join(a.out, 'token-client2.jwt'), await mint({ claims: { cnf: { 'x5t#S256': x5tS256(a.cert2) } } }))
}
{
  const { privateKey: otherKey } = await generateKeyPair(ALG)
  writeFileSync(join(a.out, 'token-wrongkey.jwt'), await mint({}, otherKey))
}

const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url'))
writeFileSync(join(a.out, 'claims.json'), JSON.stringify(claims, null, 2) + '\n')
console.log(`mint-token: wrote ${a.out}/{token.jwt,pub.pem,jwks.json,...} kid=${kid} x5t#S256=${claims.cnf['x5t#S256']} (${token.length} bytes)`)
