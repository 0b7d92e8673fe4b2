/**
 * The admin listener (issue 2, "Observability"; gateway.admin_listen): GET /status, /status/ready, /metrics
 * (Prometheus text), and POST /config (Kong DB-less style reload) with valid and invalid YAML and admin_allow.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { readFileSync } from 'node:fs'
import { connect } from 'node:tls'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'

let pki: TestPki
let up: Upstream
let gw: TestGateway
let admin: string
let http: string

const config = (routes: string): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  listen:
    - address: 127.0.0.1:0
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: require
services:
  - name: echo
    url: ${up.url}
    routes:
${routes}`

const ORDERS = `      - name: orders
        paths: [/orders]
      - name: slow
        paths: [/slow]
`

async function get (url: string): Promise<{ status: number, type: string, text: string }> {
  const r = await request(url)
  return { status: r.statusCode, type: String(r.headers['content-type']), text: await r.body.text() }
}

async function postConfig (yaml: string, base = admin): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await request(`${base}/config`, { method: 'POST', body: yaml, headers: { 'content-type': 'application/yaml' } })
  return { status: r.statusCode, json: await r.body.json() as Record<string, unknown> }
}

/** The value of one Prometheus sample, e.g. metric('certbound_http_requests_total', { route: 'orders', status: '200' }). */
function sample (text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line)
    if (m === null || m[1] !== name) continue
    const got = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map(x => [x[1], x[2]]))
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3])
  }
  return undefined
}

/** A TLS handshake on the require listener, with or without client1's certificate; resolves when it is over. */
function handshake (withCert: boolean): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({
      host: '127.0.0.1',
      port: gw.port(1),
      servername: 'localhost',
      ca: readFileSync(pki.ca.certFile),
      cert: withCert ? readFileSync(pki.client1.certFile) : undefined,
      key: withCert ? readFileSync(pki.client1.keyFile) : undefined,
    }, () => { s.end('GET /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n') })
    s.on('data', () => undefined)
    s.on('error', () => undefined)
    s.on('close', () => resolve())
  })
}

beforeAll(async () => {
  pki = await createTestPki()
  up = await startUpstream()
  gw = await startGateway(config(ORDERS))
  admin = gw.adminUrl!
  http = gw.url(0)
})

afterAll(async () => {
  await gw?.close()
  await up?.close()
  pki?.cleanup()
})

describe('GET /status and /status/ready', () => {
  it('/status: ok, ready, config hash, uptime, version', async () => {
    const r = await get(`${admin}/status`)
    expect(r.status).toBe(200)
    expect(r.type).toMatch(/^application\/json/)
    const s = JSON.parse(r.text) as Record<string, unknown>
    expect(s).toMatchObject({ status: 'ok', ready: true, version: expect.any(String) })
    expect(s.config_hash).toMatch(/^[0-9a-f]{16}$/)
    expect(typeof s.uptime_s).toBe('number')
    expect(new Date(String(s.started_at)).getTime()).toBeLessThanOrEqual(Date.now())
  })

  it('/status/ready: 200 when every plugin is ready', async () => {
    const r = await get(`${admin}/status/ready`)
    expect(r.status).toBe(200)
    expect(JSON.parse(r.text)).toMatchObject({ ready: true })
  })

  it('unknown admin paths: 404; GET /config: 405', async () => {
    expect((await get(`${admin}/nope`)).status).toBe(404)
    expect((await get(`${admin}/config`)).status).toBe(405)
  })
})

describe('GET /metrics (Prometheus text format)', () => {
  it('counts requests by route and status, latency, TLS handshakes and client-certificate failures', async () => {
    for (let i = 0; i < 3; i++) expect((await get(`${http}/orders/${i}`)).status).toBe(200)
    expect((await get(`${http}/missing`)).status).toBe(404)
    await handshake(true)
    await handshake(false)
    // the access log (and the counters) are written after the response
    await expect.poll(async () => sample((await get(`${admin}/metrics`)).text, 'certbound_http_requests_total', { route: '(none)', status: '404' })).toBeGreaterThanOrEqual(1)
    const r = await get(`${admin}/metrics`)
    expect(r.status).toBe(200)
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(r.text).toContain('# TYPE certbound_http_requests_total counter')
    expect(sample(r.text, 'certbound_http_requests_total', { route: 'orders', status: '200' })).toBeGreaterThanOrEqual(3)
    expect(sample(r.text, 'certbound_http_request_duration_seconds_count', { route: 'orders' })).toBeGreaterThanOrEqual(3)
    expect(sample(r.text, 'certbound_tls_handshakes_total', { listener: 'listen[1]' })).toBeGreaterThanOrEqual(1)
    expect(sample(r.text, 'certbound_tls_client_cert_failures_total', { listener: 'listen[1]' })).toBeGreaterThanOrEqual(1)
  })
})

describe('POST /config', () => {
  it('valid YAML: 200, the new routes answer at once, the old ones are gone; in-flight requests complete', async () => {
    const before = JSON.parse((await get(`${admin}/status`)).text) as { config_hash: string }
    up.handler = (req, res) => {
      setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end(`late answer for ${req.url}`) }, 600)
    }
    let inflight: Promise<{ status: number, text: string }> | undefined
    try {
      inflight = get(`${http}/slow/request`)
      await expect.poll(() => up.requests.some(r => r.url === '/request') ? true : undefined).toBe(true)
      const r = await postConfig(config(`      - name: billing
        paths: [/billing]
`))
      expect(r.status).toBe(200)
      expect(r.json.config_hash).not.toBe(before.config_hash)
      // the request that started on the old config still gets its answer
      const old = await inflight
      expect(old).toMatchObject({ status: 200, text: 'late answer for /request' })
    } finally {
      await inflight?.catch(() => undefined)
      up.handler = undefined
    }
    expect((await get(`${http}/billing/1`)).status).toBe(200)
    expect((await get(`${http}/orders/1`)).status).toBe(404)
    const after = JSON.parse((await get(`${admin}/status`)).text) as { config_hash: string }
    expect(after.config_hash).not.toBe(before.config_hash)
    // the listeners kept their ports
    expect(gw.gateway.addresses().map(a => a.port)).toEqual([gw.port(0), gw.port(1)])
  })

  it('invalid YAML: 400 with file:line:col diagnostics; the running config keeps serving', async () => {
    const before = JSON.parse((await get(`${admin}/status`)).text) as { config_hash: string }
    const r = await postConfig(config(`      - name: billing
        paths: [/billing]
        strip_pat: true
`))
    expect(r.status).toBe(400)
    expect(r.json.message).toBe('invalid configuration; nothing changed')
    expect(r.json.errors).toMatch(/gateway\.yml:18:9 {2}CB_CFG_UNKNOWN_FIELD {2}services\[0\]\.routes\[0\]\.strip_pat/)
    expect(r.json.diagnostics).toEqual([expect.objectContaining({ line: 18, col: 9, code: 'CB_CFG_UNKNOWN_FIELD', path: 'services[0].routes[0].strip_pat' })])
    expect((await get(`${http}/billing/1`)).status).toBe(200)
    const after = JSON.parse((await get(`${admin}/status`)).text) as { config_hash: string }
    expect(after.config_hash).toBe(before.config_hash)
  })

  it('a YAML syntax error is refused the same way', async () => {
    const r = await postConfig('_format_version: "3.0"\nservices: [\n')
    expect(r.status).toBe(400)
    expect(r.json.errors).toMatch(/gateway\.yml:\d+:\d+ {2}CB_CFG_YAML/)
    expect((await get(`${http}/billing/1`)).status).toBe(200)
  })

  it('reloads are counted by result', async () => {
    const m = (await get(`${admin}/metrics`)).text
    expect(sample(m, 'certbound_config_reloads_total', { result: 'applied' })).toBeGreaterThanOrEqual(1)
    expect(sample(m, 'certbound_config_reloads_total', { result: 'invalid' })).toBeGreaterThanOrEqual(2)
  })

  it('a body that is not YAML by Content-Type: 415', async () => {
    const r = await request(`${admin}/config`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
    await r.body.text()
    expect(r.statusCode).toBe(415)
  })

  it('gateway.admin_allow: a peer outside it (loopback vs 10.0.0.0/8) gets 403 and nothing changes', async () => {
    const locked = await startGateway(`_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  admin_allow: ['10.0.0.0/8']
  listen:
    - address: 127.0.0.1:0
services:
  - name: echo
    url: ${up.url}
    routes:
      - { name: orders, paths: [/orders] }
`)
    try {
      const r = await postConfig(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
`, locked.adminUrl)
      expect(r.status).toBe(403)
      expect(r.json.message).toMatch(/admin_allow/)
      expect((await get(`${locked.url()}/orders`)).status).toBe(200)
      // reading status is still open
      expect((await get(`${locked.adminUrl}/status`)).status).toBe(200)
    } finally {
      await locked.close()
    }
  })
})
