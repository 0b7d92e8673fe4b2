/**
 * The hostile-input corpus (corpus.ts) against ONE gateway: a TLS listener (client_certificate: request) and a
 * plain one, the full chain (mtls-auth + openid-connect strict proof of possession against a real oidc-provider
 * IdP + require-scopes + request-transformer), and an upstream that records every request head it receives.
 * Each case gets the right status, the upstream sees exactly what the case allows, nothing is fetched from a
 * jku/x5u, and after the whole corpus the gateway still answers a good request, with no unhandled rejection.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { ConnectionOptions, TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { curl } from '../helpers/curl.js'
import { startIssuer, type TestIssuer } from '../plugins/openid-connect/issuer.js'
import { AUDIENCE, MAX_BODY_SIZE, MAX_HEADER_COUNT, MAX_HEADER_SIZE, SPOOF, TRUSTED_PEER, corpus, type ClientCertName, type Expectation, type Fixtures, type HeaderExpectation, type HostileCase, type Send } from './corpus.js'
import { exchange, rawRequest, type WireResponse } from './wire.js'

interface SeenRequest { method: string, url: string, headers: IncomingMessage['headers'], complete: boolean }

/** An upstream that records each request as soon as its head arrives (a started-then-aborted request counts). */
async function startRecordingUpstream (): Promise<{ url: string, seen: SeenRequest[], close (): Promise<void> }> {
  const seen: SeenRequest[] = []
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    const rec: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, complete: false }
    seen.push(rec)
    req.resume()
    req.on('end', () => {
      rec.complete = true
      const body = JSON.stringify({ ok: true })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close () { for (const s of sockets) s.destroy(); await new Promise<void>(r => server.close(() => r())) },
  }
}

/** The jku/x5u target: records every request; serves the attacker's JWKS and certificate, should anyone ask. */
async function startAttacker (jwks: unknown, certPem: string): Promise<{ url: string, requests: string[], close (): Promise<void> }> {
  const requests: string[] = []
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`)
    if (req.url?.endsWith('.pem')) { res.writeHead(200, { 'content-type': 'application/pem-certificate-chain' }); res.end(certPem); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(jwks))
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise<void>(r => server.close(() => r())) }
}

function getJson (url: string, ca: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { try { resolve(JSON.parse(body) as Record<string, unknown>) } catch (e) { reject(e as Error) } })
    }).on('error', reject).end()
  })
}

let pki: TestPki
let idp: Idp
let local: TestIssuer
let upstream: Awaited<ReturnType<typeof startRecordingUpstream>>
let attacker: Awaited<ReturnType<typeof startAttacker>>
let gw: TestGateway
let f: Fixtures
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled)
  pki = await createTestPki()
  const attackerKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const attackerJwk = { ...attackerKeys.publicKey.export({ format: 'jwk' }), kid: 'attacker-kid', alg: 'ES256', use: 'sig' }
  ;[idp, local, upstream, attacker] = await Promise.all([
    startIdp({
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      clientCaPem: pki.ca.certPem,
      audience: AUDIENCE,
      clients: [
        { client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org', scope: 'system-access other-access' },
        { client_id: 'client2', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client2,O=Example Org', scope: 'system-access' },
      ],
    }),
    startIssuer({ cert: pki.server.certPem, key: pki.server.keyPem }),
    startRecordingUpstream(),
    startAttacker({ keys: [attackerJwk] }, pki.selfSigned.certPem),
  ])
  gw = await startGateway(`
_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
    - address: 127.0.0.1:0
  trusted_certificates: ${pki.ca.certFile}
  trusted_ips: [${TRUSTED_PEER}/32]
  limits:
    max_header_size: ${MAX_HEADER_SIZE}
    max_body_size: ${MAX_BODY_SIZE}
    max_header_count: ${MAX_HEADER_COUNT}
services:
  - name: echo
    url: ${upstream.url}
    retries: 0
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
              revocation_check_mode: IGNORE_CA_ERROR
              crl_files: [${pki.crlFile}]
              upstream_cert_header: X-Client-Cert
              upstream_cert_s_dn_header: X-SSL-Client-S-DN
          - name: openid-connect
            config:
              issuer: ${idp.issuer}
              auth_methods: [bearer]
              audience_required: [${AUDIENCE}]
              proof_of_possession_mtls: strict
              upstream_headers_claims: [sub]
              upstream_headers_names: [X-Authenticated-Sub]
          - name: require-scopes
            config:
              scopes: [system-access]
          - name: request-transformer
            config:
              add:
                headers:
                  - "x-consumer-id:$(credential.client_id)"
                  - "x-client-subject:$(client_cert.subject)"
      - name: local
        paths: [/local]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
          - name: openid-connect
            config:
              issuer: ${local.issuer}
              auth_methods: [bearer]
              audience_required: [${AUDIENCE}]
              proof_of_possession_mtls: strict
          - name: require-scopes
            config:
              scopes: [system-access]
      - name: open
        paths: [/open]
`)
  const [t1, t2, t3, jwks] = await Promise.all([
    idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'system-access' }),
    idp.token({ clientId: 'client2', certPem: pki.client2.certPem, keyPem: pki.client2.keyPem, scope: 'system-access' }),
    idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem, scope: 'other-access' }),
    getJson(idp.jwksUri, pki.ca.certPem),
  ])
  const idpJwk = (jwks.keys as Array<Record<string, unknown>>).find(k => k.kid === idp.currentKid)!
  const idpKey: KeyObject = createPublicKey({ key: idpJwk as never, format: 'jwk' })
  f = {
    pki,
    tlsPort: gw.port(0),
    plainPort: gw.port(1),
    idp: { issuer: idp.issuer, kid: idp.currentKid, publicKeyPem: idpKey.export({ type: 'spki', format: 'pem' }) as string, publicJwk: idpJwk },
    tokens: { client1: t1.access_token, client2: t2.access_token, client1OtherScope: t3.access_token },
    attacker: { url: attacker.url, kid: 'attacker-kid', privateKey: attackerKeys.privateKey, publicJwk: attackerJwk, certPem: pki.selfSigned.certPem },
    local: {
      issuer: local.issuer,
      sign: (claims, header) => local.sign({ claims, header }),
      signRaw: async (claims, header) => {
        const signed = await local.sign({ claims }) // the defaults (iss, aud, exp...) as the issuer writes them
        const defaults = JSON.parse(Buffer.from(signed.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>
        const key = local.published[0]
        return local.signRaw({ alg: key.alg, kid: key.kid, typ: 'at+jwt', ...header }, defaults, key)
      },
    },
  }
}, 60_000)

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await gw?.close()
  await Promise.all([upstream?.close(), attacker?.close(), idp?.close(), local?.stop()])
  pki?.cleanup()
})

interface Outcome {
  status: number | null
  response: WireResponse | undefined
  responses: number
  closed: boolean
  ms: number
  detail: string
}

function tlsOptionsFor (cert: ClientCertName | null | undefined, extra: ConnectionOptions = {}): ConnectionOptions {
  const c = cert === undefined || cert === null ? undefined : pki[cert]
  return { ca: pki.ca.certPem, ...(c === undefined ? {} : { cert: c.certPem, key: c.keyPem }), ...extra }
}

async function send (s: Send): Promise<Outcome> {
  switch (s.kind) {
    case 'raw': {
      const tls = s.listener === 'tls' && s.noTls !== true ? tlsOptionsFor(s.cert, { ...s.tls }) : undefined
      const r = await exchange({ port: s.listener === 'tls' ? f.tlsPort : f.plainPort, tls, localAddress: s.from }, s.chunks, { pauseMs: s.pauseMs })
      return { status: r.response?.status ?? null, response: r.response, responses: r.responses.length, closed: r.closed, ms: r.ms, detail: r.error ?? r.raw.slice(0, 300) }
    }
    case 'curl': {
      const args = ['--cacert', pki.ca.certFile]
      if (s.cert !== undefined) args.push('--cert', pki[s.cert].certFile, '--key', pki[s.cert].keyFile)
      const t0 = performance.now()
      const r = await curl([...args, ...s.args, `${s.listener === 'tls' ? `https://localhost:${f.tlsPort}` : `http://127.0.0.1:${f.plainPort}`}${s.path}`])
      const ok = r.exitCode === 0
      return { status: ok ? r.status : null, response: ok ? { status: r.status, headers: r.headers, body: r.body } : undefined, responses: ok ? 1 : 0, closed: true, ms: performance.now() - t0, detail: `curl exit ${r.exitCode} ${r.stderr.trim()}` }
    }
    case 'renegotiate': {
      let renegotiation = 'not attempted'
      const r = await exchange({ port: f.tlsPort, tls: tlsOptionsFor(s.cert, { maxVersion: 'TLSv1.2' }) }, [s.request], {
        beforeWrite: (socket) => new Promise<void>((resolve) => {
          const t = socket as TLSSocket
          const done = (outcome: string): void => { clearTimeout(timer); renegotiation = outcome; resolve() }
          // SSL_OP_NO_RENEGOTIATION: OpenSSL answers the client's HelloRequest with a fatal no_renegotiation alert
          const timer = setTimeout(() => done('no answer'), 2000)
          t.once('error', (err: Error & { code?: string }) => done(`failed: ${err.code ?? err.message}`))
          t.once('close', () => done('connection closed'))
          const started = t.renegotiate({ rejectUnauthorized: false }, (err) => done(err === null ? 'succeeded' : `failed: ${err.message}`))
          if (!started) done('refused locally')
        }),
      })
      expect(renegotiation, 'the gateway refuses renegotiation').toMatch(/^failed: ERR_SSL_NO_RENEGOTIATION|^connection closed/)
      return { status: r.response?.status ?? null, response: r.response, responses: r.responses.length, closed: r.closed, ms: r.ms, detail: `renegotiation ${renegotiation}; ${r.error ?? r.raw.slice(0, 200)}` }
    }
    case 'resume': {
      const pin = { minVersion: s.version, maxVersion: s.version } as const
      const first = await exchange({ port: f.tlsPort, tls: tlsOptionsFor(s.first, pin) }, [rawRequest('GET', '/open/prime')])
      expect(first.response?.status, 'the first connection works').toBe(200)
      expect(first.session, 'the server issued a session').toBeDefined()
      const r = await exchange({ port: f.tlsPort, tls: tlsOptionsFor(s.second, { ...pin, session: first.session }) }, [s.request])
      expect(r.tls?.resumed, 'the second connection resumed the first one\'s session').toBe(true)
      return { status: r.response?.status ?? null, response: r.response, responses: r.responses.length, closed: r.closed, ms: r.ms, detail: r.error ?? r.raw.slice(0, 300) }
    }
  }
}

function matchHeader (actual: string | undefined, e: HeaderExpectation, what: string): void {
  const want = typeof e === 'function' ? e(f) : e
  if (want === null) expect(actual, `${what} must be absent`).toBeUndefined()
  else if (want instanceof RegExp) expect(actual, what).toMatch(want)
  else expect(actual, what).toBe(want)
}

function check (c: HostileCase, e: Expectation, o: Outcome, all: SeenRequest[]): void {
  // a resumption case primes its session with a request of its own
  const hits = all.filter(h => h.url !== '/prime')
  const statuses = Array.isArray(e.status) ? e.status : [e.status]
  expect(statuses, `status (${o.detail})`).toContain(o.status)
  if (e.closed === true) expect(o.closed, 'the server closed the connection').toBe(true)
  if (o.response !== undefined) {
    expect(o.responses, 'responses on the connection (a second one would be a smuggled request)').toBe(e.responses ?? 1)
    for (const [k, v] of Object.entries(e.headers ?? {})) matchHeader(o.response.headers[k], v, `response header ${k}`)
    if (e.body instanceof RegExp) expect(o.response.body).toMatch(e.body)
    else if (e.body !== undefined) expect(JSON.parse(o.response.body)).toMatchObject(e.body)
  }
  expect(o.ms, 'answered in time').toBeLessThan(e.withinMs ?? 5000)
  if (c.expectUpstreamHit) {
    expect(hits.length, 'the upstream received the request').toBeGreaterThan(0)
    const last = hits[hits.length - 1]
    if (e.upstreamUrl !== undefined) expect(last.url).toBe(e.upstreamUrl)
    for (const [k, v] of Object.entries(e.upstream ?? {})) matchHeader(last.headers[k] as string | undefined, v, `upstream header ${k}`)
    for (const h of hits) {
      for (const [k, v] of Object.entries(h.headers)) expect(`${k}: ${String(v)}`, 'a spoofed value reached the upstream').not.toContain(SPOOF)
    }
  } else {
    expect(hits.map(h => `${h.method} ${h.url}`), 'nothing may reach the upstream').toEqual([])
  }
}

describe('hostile input corpus (one gateway, full chain, TLS and plain listeners)', () => {
  it('the corpus is large enough to mean something', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(100)
    expect(new Set(corpus.map(c => c.name)).size, 'case names are unique').toBe(corpus.length)
  })

  for (const c of corpus) {
    it(`[${c.group}] ${c.name}`, async () => {
      const before = upstream.seen.length
      const o = await send(await c.send(f))
      // a request the gateway let through late (after answering) would show up here
      await new Promise(r => setTimeout(r, c.expectUpstreamHit ? 0 : 25))
      check(c, c.expect, o, upstream.seen.slice(before))
      expect(attacker.requests, 'nothing is ever fetched from a jku/x5u').toEqual([])
    })
  }

  it('after the corpus: the gateway answers a good request with 200, nothing crashed, nothing leaked', async () => {
    const good = await exchange({ port: f.tlsPort, tls: tlsOptionsFor('client1') }, [rawRequest('GET', '/api/after', [['Authorization', `Bearer ${f.tokens.client1}`]])])
    expect(good.response?.status).toBe(200)
    const plain = await exchange({ port: f.plainPort }, [rawRequest('GET', '/open/after')])
    expect(plain.response?.status).toBe(200)
    expect(unhandled, 'unhandled rejections').toEqual([])
    expect(gw.logs.filter(l => l.msg === 'internal error'), 'internal errors (500s) in the log').toEqual([])
    const text = JSON.stringify(gw.logs)
    for (const t of Object.values(f.tokens)) expect(text.includes(t), 'a token in the log').toBe(false)
    expect(text).not.toContain('PRIVATE KEY')
    expect(attacker.requests).toEqual([])
  })
})
