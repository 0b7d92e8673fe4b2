/**
 * RFC 9449 §11.1 across processes (issue 14): a DPoP proof's `jti` is remembered in the shared store, so a proof
 * replayed at another worker (gateway.workers: 2, memory store in the primary) or at another node (two certbound
 * processes, one real redis-server) is refused; a nonce issued by one node is accepted by the other (stateless
 * HMAC nonces, key shared through the store). Real processes, the real curl over new connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { curl, type CurlResult } from '../helpers/curl.js'
import { gatewaySection } from '../helpers/store-nodes.js'

const SECRET = 'dpop-replay-secret-0123456789'
const STORE_SECRET = 'a-test-secret-of-at-least-32-characters!'
let pki: TestPki
let dir: string
let redis: TestRedis | undefined
const procs: CertboundProcess[] = []
let key: { privateKey: CryptoKey, jwk: JWK }

interface GwNode { readonly port: number, readonly admin: string, readonly proc: CertboundProcess }

function config (o: { port: number, adminPort: number, issuerPort: number, workers: number, store?: string }): string {
  const issuer = `https://localhost:${o.issuerPort}`
  const route = (name: string, extra: string): string => `      - name: ${name}
        paths: [/${name}]
        plugins:
          - name: openid-connect
            config:
              issuer: ${issuer}
              audience_required: [${issuer}]
              proof_of_possession_dpop: strict
${extra}          - name: request-termination
            config: { status_code: 200, echo: true }
`
  return `${gatewaySection({ pki, port: o.port, adminPort: o.adminPort, workers: o.workers, store: o.store })}authorization_server:
  issuer: ${issuer}
  clients:
    - client_id: dpop-client
      token_endpoint_auth_method: client_secret_basic
      client_secret: ${SECRET}
      scope: system-access
      dpop_bound_access_tokens: true
services:
  - name: echo
    url: http://127.0.0.1:9/unused
    routes:
${route('dpop', '')}${route('nonce', '              dpop_use_nonce: true\n')}`
}

async function startGw (name: string, o: { issuerPort: number, port?: number, workers: number, store?: string }): Promise<GwNode> {
  const port = o.port ?? await freePort()
  const adminPort = await freePort()
  const file = join(dir, `${name}.yml`)
  writeFileSync(file, config({ ...o, port, adminPort }))
  const proc = startCertbound(file, ['--no-watch'], { keepLogs: true })
  procs.push(proc)
  const admin = `http://127.0.0.1:${adminPort}`
  await waitFor(`${name} ready`, async () => {
    if (proc.proc.exitCode !== null) throw new Error(`${name} exited: ${proc.stderr}`)
    try {
      const r = await request(admin + '/status/ready')
      await r.body.text()
      return r.statusCode === 200 ? true : undefined
    } catch { return undefined }
  }, 30_000)
  return { port, admin, proc }
}

const tls = (n: GwNode): string[] => ['--cacert', pki.ca.certFile, '--resolve', `localhost:${n.port}:127.0.0.1`]

async function proof (htm: string, htu: string, o: { token?: string, nonce?: string } = {}): Promise<string> {
  const claims: Record<string, unknown> = { jti: randomBytes(12).toString('base64url'), htm, htu, iat: Math.floor(Date.now() / 1000) }
  if (o.token !== undefined) claims.ath = createHash('sha256').update(o.token).digest('base64url')
  if (o.nonce !== undefined) claims.nonce = o.nonce
  return new SignJWT(claims).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }).sign(key.privateKey)
}

/** A DPoP-bound token from `n`'s token endpoint, whose issuer is `issuerPort`'s (the name all nodes share). */
async function dpopToken (n: GwNode, issuerPort: number): Promise<string> {
  const p = await proof('POST', `https://localhost:${issuerPort}/oauth2/token`)
  const r = await curl([...tls(n), '-u', `dpop-client:${SECRET}`, '-H', `DPoP: ${p}`, '-d', 'grant_type=client_credentials', `https://localhost:${n.port}/oauth2/token`])
  if (r.status !== 200) throw new Error(`token: ${r.status} ${r.body} ${r.stderr}`)
  return (JSON.parse(r.body) as { access_token: string }).access_token
}

/** One request over a new connection; `host` is the port the proof's htu names (the node's external name). */
function call (n: GwNode, path: string, token: string, dpop: string): Promise<CurlResult> {
  return curl([...tls(n), '-H', `Authorization: DPoP ${token}`, '-H', `DPoP: ${dpop}`, `https://localhost:${n.port}${path}`])
}

function servedBy (n: GwNode, path: string): Array<{ pid: number, status: number, err?: string }> {
  return n.proc.logs
    .filter(l => l.msg === 'request' && l.path === path && typeof l.status === 'number')
    .map(l => ({ pid: l.pid as number, status: l.status as number, err: l.err as string | undefined }))
}

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'cb-dpop-replay-'))
  const k = await generateKeyPair('ES256', { extractable: true })
  key = { privateKey: k.privateKey, jwk: await exportJWK(k.publicKey) }
}, 200_000)

afterAll(async () => {
  for (const p of procs) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGTERM')
    await Promise.race([p.exited, new Promise(r => setTimeout(r, 8000))])
    if (p.proc.exitCode === null && p.proc.signalCode === null) await p.kill()
  }
  await redis?.stop()
  pki?.cleanup()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe('gateway.workers: 2 (memory store in the primary)', () => {
  it('a proof accepted by one worker is refused by the other: exactly one 200 among many new connections', async () => {
    const port = await freePort()
    const n = await startGw('workers', { issuerPort: port, port, workers: 2 })
    const token = await dpopToken(n, port)
    const p = await proof('GET', `https://localhost:${port}/dpop`, { token })
    const results: CurlResult[] = []
    const crossed = (): boolean => {
      const served = servedBy(n, '/dpop')
      const winner = served.find(s => s.status === 200)
      // the replay was refused by the worker that did not accept it: the jti crossed processes
      return winner !== undefined && served.some(s => s.pid !== winner.pid && s.err === 'CB_ERR_DPOP_REPLAY')
    }
    // new connections are spread over the workers by the primary; send until a replay met the other worker (bounded)
    while (results.length < 36 && !(results.length >= 12 && crossed())) {
      for (let i = 0; i < 6; i++) results.push(await call(n, '/dpop', token, p))
      await waitFor('access log lines', () => servedBy(n, '/dpop').length >= results.length ? true : undefined, 10_000)
    }
    expect(results.map(r => r.status).filter(s => s === 200)).toHaveLength(1)
    expect(results.filter(r => r.status === 401).every(r => /DPoP realm="certbound", error="invalid_dpop_proof"/.test(r.headers['www-authenticate']))).toBe(true)
    expect(new Set(servedBy(n, '/dpop').map(s => s.pid)).size).toBe(2)
    expect(crossed()).toBe(true)
  })
})

describe('two nodes, one Redis', () => {
  it('a proof accepted at node A is refused at node B; a nonce from A is accepted at B', async () => {
    redis = await startRedis()
    const store = `    redis:\n      url: ${redis.url}\n      key_prefix: "cbdpop:"\n    secret: "${STORE_SECRET}"`
    const portA = await freePort()
    const a = await startGw('a', { issuerPort: portA, port: portA, workers: 0, store })
    const b = await startGw('b', { issuerPort: portA, workers: 0, store })
    const token = await dpopToken(a, portA)
    // the proof names A's external URI: behind one name (a load balancer), both nodes are that URI; B is reached
    // here at its own port, so its proof names B's — the point is the shared jti, not the URI
    const jti = randomBytes(12).toString('base64url')
    const sign = (htu: string): Promise<string> => new SignJWT({ jti, htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), ath: createHash('sha256').update(token).digest('base64url') })
      .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }).sign(key.privateKey)
    expect((await call(a, '/dpop', token, await sign(`https://localhost:${a.port}/dpop`))).status).toBe(200)
    const replay = await call(b, '/dpop', token, await sign(`https://localhost:${b.port}/dpop`))
    expect(replay.status).toBe(401)
    await waitFor('B logs the refusal', () => servedBy(b, '/dpop').find(s => s.err === 'CB_ERR_DPOP_REPLAY') !== undefined ? true : undefined, 10_000)

    // nonces: A asks for one, B accepts it (the HMAC key is in Redis)
    const first = await call(a, '/nonce', token, await proof('GET', `https://localhost:${a.port}/nonce`, { token }))
    expect(first.status).toBe(401)
    const nonce = first.headers['dpop-nonce']
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect((await call(b, '/nonce', token, await proof('GET', `https://localhost:${b.port}/nonce`, { token, nonce }))).status).toBe(200)
  })
})
