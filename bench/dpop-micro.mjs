#!/usr/bin/env node
// DPoP's per-request cost in certbound's own code, measured in process (no sockets, no load generator):
// openid-connect's access() for
//   mtls  a cached certificate-bound Bearer token on its TLS session (the S5 chain's token step), and
//   dpop  a cached DPoP-bound token with a fresh ES256 proof per request (typ/alg/jwk, signature, htm/htu, iat,
//         ath, jkt, jti replay in the memory store: the full RFC 9449 §4.3 list).
// Proofs, tokens and the client certificate are made before the clock starts; CPU is process.cpuUsage() over the
// measured loop, with --concurrency (64) requests in flight. Run after `npm run build`:
//   node bench/dpop-micro.mjs [--n 20000] [--concurrency 64] [--redis]
// --redis also runs the DPoP case with the jti replay check in a real redis-server (started here on a free loopback
// port, stopped by its PID): this process's CPU per request against the memory store's (Redis's own CPU is not
// counted, as a proxy's benchmark does not count its upstream's).
import { X509Certificate, createHash, generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { SignJWT, exportJWK, generateKeyPair, calculateJwkThumbprint } from 'jose'

const dist = new URL('../dist/', import.meta.url)
const { default: oidc } = await import(new URL('plugins/openid-connect/index.js', dist).href)
const { RequestContext } = await import(new URL('src/pipeline/context.js', dist).href)
const { MemoryStore } = await import(new URL('src/store/memory.js', dist).href)
const { describeCertificate } = await import(new URL('src/server/peer.js', dist).href)
const { createHttpClient } = await import(new URL('src/http-client/index.js', dist).href)

const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' }, redis: { type: 'boolean', default: false }, concurrency: { type: 'string', default: '64' } } })
const N = Number(values.n)
const CONCURRENCY = Number(values.concurrency)
const ISSUER = 'https://issuer.bench.test'
const AUD = 'https://api.bench.test'

// the issuer: an ES256 key served in process (LocalIssuer), as the built-in authorization server does
const issuerKey = await generateKeyPair('ES256', { extractable: true })
const issuerJwk = { ...(await exportJWK(issuerKey.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
const local = {
  issuer: ISSUER,
  metadata: () => ({ issuer: ISSUER, jwks_uri: ISSUER + '/jwks' }),
  jwks: () => ({ keys: [issuerJwk] }),
  introspect: async () => ({ active: false }),
}
const now = Math.floor(Date.now() / 1000)
const token = (cnf) => new SignJWT({ iss: ISSUER, aud: AUD, sub: 'svc', client_id: 'svc', scope: 'system-access', exp: now + 3600, iat: now, jti: randomBytes(8).toString('hex'), cnf })
  .setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }).sign(issuerKey.privateKey)

// a client certificate (openssl), for the certificate-bound path
const dir = mkdtempSync(join(tmpdir(), 'certbound-dpop-micro-'))
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=client1', '-days', '1', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'ignore' })
const cert = describeCertificate(new X509Certificate(readFileSync(join(dir, 'c.pem'))))
rmSync(dir, { recursive: true, force: true })

// the DPoP key, and proofs signed synchronously with node:crypto (ES256 = IEEE P1363 r‖s)
const dpopKey = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const dpopJwk = dpopKey.publicKey.export({ format: 'jwk' })
const jkt = await calculateJwkThumbprint(dpopJwk)
const bearerTok = await token({ 'x5t#S256': cert.x5tS256 })
const dpopTok = await token({ jkt })
const ath = createHash('sha256').update(dpopTok).digest('base64url')
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
const header = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: dpopJwk })
function proof (i) {
  const input = header + '.' + b64({ jti: 'p' + i, htm: 'GET', htu: 'https://api.bench.test/orders', iat: now, ath })
  return input + '.' + cryptoSign('sha256', Buffer.from(input), { key: dpopKey.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')
}

const silent = pino({ level: 'silent' })
function ctx (headers, tls) {
  const req = new IncomingMessage(new Socket())
  req.method = 'GET'
  req.url = '/orders'
  req.rawHeaders = headers.flat()
  req.headers = Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), v]))
  return new RequestContext({ id: 'b', startNs: 0n, req, method: 'GET', path: '/orders', query: '', remoteAddress: '127.0.0.1', route: { name: 'r' }, tls, listenerTls: true, log: silent })
}
const tls = { protocol: 'TLSv1.3', cipher: 'x', resumed: false, certificate: cert, verified: true, verifyError: null }

async function plugin (config, store = new MemoryStore({ now: () => Date.now() })) {
  return oidc.create(oidc.schema.parse({ issuer: ISSUER, audience_required: [AUD], ...config }), {
    baseDir: '.', resolvePath: (p) => p, logger: pino({ level: 'silent' }), http: createHttpClient(), where: 'bench',
    local: { get: (k) => ((k.id ?? k) === 'issuer:' + ISSUER ? local : undefined) }, store, now: () => Date.now(),
  })
}

async function measure (name, p, makeCtx) {
  const ctxs = Array.from({ length: N + 1000 }, (_, i) => makeCtx(i))
  for (let i = 0; i < 1000; i++) await p.access(ctxs[i]) // warm-up: JIT, the token cache, the imported key
  const t0 = process.cpuUsage()
  const w0 = performance.now()
  // CONCURRENCY requests in flight, as 64 keep-alive connections would keep them (the bench's ka mode)
  let next = 1000
  async function lane () {
    while (next < N + 1000) {
      const r = p.access(ctxs[next++])
      if (r !== undefined) await r
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, lane))
  const cpu = process.cpuUsage(t0)
  const us = (cpu.user + cpu.system) / N
  console.log(`${name.padEnd(6)} ${us.toFixed(1).padStart(7)} µs CPU/request  (${(N / ((performance.now() - w0) / 1000)).toFixed(0)} req/s on one core, n=${N}, ${CONCURRENCY} in flight)`)
  return us
}

const mtls = await plugin({ proof_of_possession_mtls: 'strict' })
const dpop = await plugin({ proof_of_possession_dpop: 'strict' })
// the proofs are built before the clock starts too
const proofs = Array.from({ length: N + 1000 }, (_, i) => proof(i))
const a = await measure('mtls', mtls, () => ctx([['Authorization', 'Bearer ' + bearerTok]], tls))
const b = await measure('dpop', dpop, (i) => ctx([['Authorization', 'DPoP ' + dpopTok], ['Host', 'api.bench.test'], ['DPoP', proofs[i]]], tls))
console.log(`dpop / mtls: ${(b / a).toFixed(2)}×; DPoP adds ${(b - a).toFixed(1)} µs per request (one ES256 verification, the §4.3 checks, one set-if-absent)`)
await mtls.close(); await dpop.close()

if (values.redis) {
  const { spawn } = await import('node:child_process')
  const { createServer } = await import('node:net')
  const { createStore, storeStarted } = await import(new URL('src/store/create.js', dist).href)
  const port = await new Promise((resolve) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) }) })
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  try {
    const deadline = Date.now() + 10_000
    let store
    while (store === undefined) {
      try {
        const s = createStore({ backend: 'redis', redis: { url: `redis://127.0.0.1:${port}` } }, { now: () => Date.now() })
        await storeStarted(s)
        if (!s.status().connected) { await s.close(); throw new Error('not connected') }
        store = s
      } catch (err) {
        if (Date.now() > deadline) throw err
        await new Promise(r => setTimeout(r, 200))
      }
    }
    const viaRedis = await plugin({ proof_of_possession_dpop: 'strict' }, store)
    const more = Array.from({ length: N + 1000 }, (_, i) => proof(N + 1000 + i))
    const r = await measure('redis', viaRedis, (i) => ctx([['Authorization', 'DPoP ' + dpopTok], ['Host', 'api.bench.test'], ['DPoP', more[i]]], tls))
    console.log(`dpop with the replay check in Redis / in memory: ${(r / b).toFixed(2)}×`)
    await viaRedis.close()
    await store.close()
  } finally {
    server.kill('SIGTERM')
  }
}
