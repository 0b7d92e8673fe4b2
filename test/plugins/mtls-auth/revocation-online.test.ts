import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { Agent } from 'node:https'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { connect } from 'node:net'
import { Registry } from 'prom-client'
import plugin from '../../../plugins/mtls-auth/index.js'
import { schema } from '../../../plugins/mtls-auth/schema.js'
import { PluginConfigError, type PluginDeps, type PluginInstance } from '../../../src/pipeline/types.js'
import { RevocationMetrics } from '../../../src/auth/revocation/metrics.js'
import { createRevocationPki, type RevocationPki } from '../../helpers/revocation-pki.js'
import { startHarness, testDeps, type Harness } from '../../unit/helpers/plugin-harness.js'
import type { Issued } from '../../unit/helpers/mtls-pki.js'
import { storeDeps } from '../../helpers/clock.js'

let pki: RevocationPki
let deps: PluginDeps
let registry: Registry
let clock = Date.now()
const open: Array<{ close (): Promise<void> }> = []

beforeAll(async () => {
  pki = await createRevocationPki()
  registry = new Registry()
  deps = { ...testDeps(pki.dir, [pki.root.certPem]), now: () => clock, revocationMetrics: new RevocationMetrics(registry) }
}, 60_000)
afterAll(async () => {
  for (const o of open.reverse()) await o.close()
  await deps?.http.close()
  await pki?.close()
})

async function serve (config: Record<string, unknown>, d: PluginDeps = deps): Promise<Harness> {
  const inst: PluginInstance = await plugin.create(schema.parse({ ca_certificates: ['root.crt'], http_timeout: 1000, ...config }), d)
  open.push({ close: () => inst.close?.() ?? Promise.resolve() })
  const h = await startHarness(inst, { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  open.push(h)
  return h
}

/** Deps of a new worker: its own stash and, unless given, its own shared store. */
const fresh = (store = storeDeps(() => clock)): PluginDeps => ({ ...deps, stash: new Map(), ...store })

const as = (c: Issued) => ({ certPem: c.certPem, keyPem: c.keyPem })

async function metric (name: string, labels: Record<string, string>): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find(x => x.name === name)
  return (m?.values as Array<{ labels: Record<string, string>, value: number }> | undefined)
    ?.filter(x => Object.entries(labels).every(([k, v]) => x.labels[k] === v)).reduce((a, x) => a + x.value, 0) ?? 0
}

type Expect = 200 | 'revoked' | 'revocation_unknown'
const CASES: ReadonlyArray<readonly [string, keyof RevocationPki, Expect, Expect, Expect]> = [
  // label, certificate, SKIP, IGNORE_CA_ERROR, STRICT
  ['OCSP good', 'good', 200, 200, 200],
  ['OCSP good, CA-signed response', 'caSigned', 200, 200, 200],
  ['OCSP revoked', 'revoked', 200, 'revoked', 'revoked'],
  ['OCSP unknown', 'unknown', 200, 200, 'revocation_unknown'],
  ['responder down', 'down', 200, 200, 'revocation_unknown'],
  ['responder down, CRL distribution point answers', 'downWithCrl', 200, 200, 200],
  ['slow responder (past http_timeout)', 'slow', 200, 200, 'revocation_unknown'],
  ['bad responder signature', 'badSignature', 200, 200, 'revocation_unknown'],
  ['huge response', 'huge', 200, 200, 'revocation_unknown'],
  ['garbage response', 'garbage', 200, 200, 'revocation_unknown'],
  ['CRL distribution point: not listed', 'crlGood', 200, 200, 200],
  ['CRL distribution point: listed (PEM)', 'crlRevoked', 200, 'revoked', 'revoked'],
  ['expired CRL', 'crlExpired', 200, 200, 'revocation_unknown'],
  ['no OCSP responder, no CRL distribution point', 'noInfo', 200, 200, 'revocation_unknown'],
]

describe('revocation_check_mode: every outcome in every mode (real openssl ocsp, real CRL server)', () => {
  const modes = ['SKIP', 'IGNORE_CA_ERROR', 'STRICT'] as const
  for (const [m, mode] of modes.entries()) {
    describe(mode, () => {
      let h: Harness
      beforeAll(async () => { h = await serve({ revocation_check_mode: mode }) })
      for (const c of CASES) {
        const want = c[2 + m] as Expect
        it(`${c[0]} → ${want === 200 ? '200' : `401 (${want})`}`, async () => {
          const a = await h.send(as(pki[c[1]] as Issued))
          if (want === 200) {
            expect(a.status).toBe(200)
          } else {
            expect(a.status).toBe(401)
            expect(a.body).toMatchObject({ code: 'CB_ERR_CERT_INVALID', message: 'TLS certificate failed verification' })
            expect(a.body.detail).toMatch(new RegExp(`^${want}:`))
          }
        }, 15_000)
      }
    })
  }
})

describe('once per TLS session, cached; counted', () => {
  it('requests on one connection and new connections reuse the answer; it is asked again when cert_cache_ttl passes', async () => {
    const d: PluginDeps = fresh()
    const h = await serve({ revocation_check_mode: 'STRICT', cert_cache_ttl: 20_000 }, d)
    const before = await pki.responder.count()
    const hitsBefore = await metric('certbound_revocation_cache_hits_total', { kind: 'answer' })
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: pki.good.certPem, key: pki.good.keyPem, ca: pki.root.certPem })
    try {
      for (let i = 0; i < 3; i++) expect((await h.send({ ...as(pki.good), agent })).status).toBe(200)
    } finally { agent.destroy() }
    for (let i = 0; i < 3; i++) expect((await h.send(as(pki.good))).status).toBe(200)
    expect(await pki.responder.count()).toBe(before + 1)
    clock += 20_001
    expect((await h.send(as(pki.good))).status).toBe(200)
    expect(await pki.responder.count()).toBe(before + 2)
    expect(await metric('certbound_revocation_cache_hits_total', { kind: 'answer' })).toBeGreaterThanOrEqual(hitsBefore)
    expect(await metric('certbound_revocation_checks_total', { source: 'ocsp', result: 'good' })).toBeGreaterThan(0)
    expect(await metric('certbound_revocation_responder_seconds', { source: 'ocsp', outcome: 'ok' })).toBeGreaterThan(0)
    clock = Date.now()
  })

  it('a resumed TLS session is re-checked once the cached answer expires, and refused if now revoked', async () => {
    const d: PluginDeps = fresh()
    const h = await serve({ revocation_check_mode: 'STRICT', cert_cache_ttl: 20_000 }, d)
    const before = await pki.responder.count()
    const first = await h.send(as(pki.good))
    expect(first.status).toBe(200)
    clock += 20_001
    const resumed = await h.send({ ...as(pki.good), session: first.session })
    const ctx = h.contexts[h.contexts.length - 1]
    if (ctx.tls?.certificate !== null && ctx.tls?.certificate !== undefined) {
      // the session carried the certificate: the expired answer was asked again
      expect(ctx.tls?.resumed).toBe(true)
      expect(resumed.status).toBe(200)
      expect(await pki.responder.count()).toBe(before + 2)
    } else {
      expect(resumed.body.code).toBe('CB_ERR_CERT_MISSING') // nodejs/node#35317: no certificate, no pass
    }
    clock = Date.now()
  })

  it('concurrent new connections with one certificate make one OCSP request', async () => {
    const d: PluginDeps = fresh()
    const h = await serve({ revocation_check_mode: 'STRICT' }, d)
    const before = await pki.responder.count()
    const all = await Promise.all(Array.from({ length: 6 }, () => h.send(as(pki.good))))
    expect(all.map(a => a.status)).toEqual([200, 200, 200, 200, 200, 200])
    expect(await pki.responder.count()).toBe(before + 1)
  })

  it('answers are shared through the store (deps.store): another worker does not ask the responder again', async () => {
    const shared = storeDeps(() => clock)
    const a = await serve({ revocation_check_mode: 'STRICT' }, fresh(shared))
    const before = await pki.responder.count()
    expect((await a.send(as(pki.revoked))).status).toBe(401)
    expect(await pki.responder.count()).toBe(before + 1)
    const b = await serve({ revocation_check_mode: 'STRICT' }, fresh(shared))
    const r = await b.send(as(pki.revoked))
    expect(r.status).toBe(401)
    expect(r.body.detail).toMatch(/^revoked: OCSP/)
    expect(await pki.responder.count()).toBe(before + 1)
  })

  it('a reload (a new instance with the same stash) starts from the cached answers', async () => {
    const stash = new Map<string, unknown>()
    const a = await serve({ revocation_check_mode: 'STRICT' }, { ...fresh(), stash })
    expect((await a.send(as(pki.caSigned))).status).toBe(200)
    const before = await pki.caResponder.count()
    const b = await serve({ revocation_check_mode: 'STRICT' }, { ...fresh(), stash })
    expect((await b.send(as(pki.caSigned))).status).toBe(200)
    expect(await pki.caResponder.count()).toBe(before)
  })
})

describe('Kong http_proxy_* / https_proxy_*', () => {
  let proxy: Server
  let tunnels = 0
  beforeAll(async () => {
    proxy = createServer((req, res) => {
      // absolute-form request (RFC 9112 §3.2.2)
      tunnels++
      const u = new URL(req.url ?? '')
      const up = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: req.method, headers: req.headers }, (r) => { res.writeHead(r.statusCode ?? 502, r.headers); r.pipe(res) })
      up.on('error', () => res.writeHead(502).end())
      req.pipe(up)
    })
    proxy.on('connect', (req, socket, head) => {
      tunnels++
      const [host, port] = (req.url ?? '').split(':')
      const up = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        up.write(head)
        up.pipe(socket)
        socket.pipe(up)
      })
      up.on('error', () => socket.destroy())
      socket.on('error', () => up.destroy())
    })
    await new Promise<void>(resolve => proxy.listen(0, '127.0.0.1', resolve))
    open.push({ close: () => new Promise<void>((resolve) => { proxy.closeAllConnections(); proxy.close(() => resolve()) }) })
  })

  it('OCSP requests go through http_proxy_host:http_proxy_port', async () => {
    const port = (proxy.address() as { port: number }).port
    const h = await serve({ revocation_check_mode: 'STRICT', http_proxy_host: '127.0.0.1', http_proxy_port: port }, fresh())
    expect((await h.send(as(pki.caSigned))).status).toBe(200)
    expect(tunnels).toBeGreaterThan(0)
  })

  it('a proxy host without a port (or the reverse) is refused at load, at the key', async () => {
    for (const [cfg, path] of [[{ http_proxy_host: 'proxy.example' }, ['http_proxy_host']], [{ https_proxy_port: 3128 }, ['https_proxy_port']]] as const) {
      const err = await Promise.resolve().then(() => plugin.create(schema.parse({ ca_certificates: ['root.crt'], ...cfg }), deps)).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PluginConfigError)
      expect((err as PluginConfigError).path).toEqual(path)
    }
  })
})
