/**
 * services[].connect_failure_hold (issue 20, "Memory"): while an upstream refuses connections, the gateway answers
 * 502 at once instead of trying to connect (and retrying) for every request — the thousands of fast 502s of an
 * outage each cost a socket and an Error, and grew the heap. Real mTLS gateway on loopback, a real upstream that
 * listens and then stops listening, connection attempts counted on undici's own diagnostics channel. The gateway's
 * clock is driven by the test (deps.now), so the windows do not depend on how loaded the machine is.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { randomUUID } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { startGateway, type LogLine, type TestGateway } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'

/** An upstream that answers 200 and closes every connection (no keep-alive: each request is a new connection). */
class CountingUpstream {
  connections = 0
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  port = 0

  async listen (port = 0): Promise<void> {
    const server = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }); res.end('up') })
    server.on('connection', (s: Socket) => { this.connections++; this.sockets.add(s); s.on('close', () => this.sockets.delete(s)) })
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, '127.0.0.1', () => resolve()) })
    this.server = server
    this.port = (server.address() as AddressInfo).port
  }

  /** Stop listening: from now on a connection to the port is refused (ECONNREFUSED). */
  async close (): Promise<void> {
    const s = this.server
    this.server = undefined
    if (s === undefined) return
    for (const sock of this.sockets) sock.destroy()
    await new Promise<void>(resolve => s.close(() => resolve()))
  }
}

async function deadPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', () => resolve()))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}

async function waitFor<T> (fn: () => T | undefined, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

let pki: TestPki
let gw: TestGateway
const upstream = new CountingUpstream()
let refusedPort: number
let clock = Date.now()
/** undici connection attempts by upstream port, from its `undici:client:beforeConnect` channel. */
const attempts = new Map<string, number>()
const onBeforeConnect = (m: unknown): void => {
  const port = String((m as { connectParams: { port: string | number } }).connectParams.port)
  attempts.set(port, (attempts.get(port) ?? 0) + 1)
}
const attemptsTo = (port: number): number => attempts.get(String(port)) ?? 0

const logFor = (id: string): Promise<LogLine> => waitFor(() => gw.logs.find(l => l.msg === 'request' && l.req_id === id), `the access log line of ${id}`)

async function get (path: string): Promise<{ status: number, body: string, log: LogLine }> {
  const id = `hold-${randomUUID()}`
  const r = await curl(['--cacert', pki.ca.certFile, '--cert', pki.client1.certFile, '--key', pki.client1.keyFile, '-H', `X-Request-Id: ${id}`, `${gw.url(0)}${path}`])
  return { status: r.status, body: r.body, log: await logFor(id) }
}

async function failFastCount (service: string): Promise<number> {
  const m = await gw.gateway.metrics.registry.getSingleMetric('certbound_upstream_fail_fast_total')!.get()
  return m.values.filter(v => v.labels.service === service).reduce((a, v) => a + v.value, 0)
}

beforeAll(async () => {
  pki = await createTestPki()
  await upstream.listen()
  refusedPort = await deadPort()
  subscribe('undici:client:beforeConnect', onBeforeConnect)
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: require
services:
  - name: held          # connect_failure_hold and retries at their defaults (1000 ms, 5)
    url: http://127.0.0.1:${upstream.port}
    routes:
      - { name: held, paths: [/held] }
  - name: nohold
    url: http://127.0.0.1:${refusedPort}
    retries: 2
    connect_failure_hold: 0
    routes:
      - { name: nohold, paths: [/nohold] }
`, { now: () => clock })
})

afterAll(async () => {
  unsubscribe('undici:client:beforeConnect', onBeforeConnect)
  await gw?.close()
  await upstream.close()
  pki?.cleanup()
})

describe('services[].connect_failure_hold (default 1000 ms): fail fast while the upstream refuses connections', () => {
  it('while the upstream listens, every request connects and is answered', async () => {
    for (let i = 0; i < 2; i++) expect((await get('/held')).status).toBe(200)
    expect(upstream.connections).toBe(2)
    expect(attemptsTo(upstream.port)).toBe(2)
  })

  it('a refused connection is not retried (retries: 5), and the next requests in the window make no connection attempt', async () => {
    await upstream.close()
    const before = attemptsTo(upstream.port)
    const first = await get('/held')
    expect(first.status).toBe(502)
    expect(JSON.parse(first.body)).toEqual({ message: 'An invalid response was received from the upstream server' })
    expect(first.log).toMatchObject({ status: 502, err: 'CB_ERR_UPSTREAM_UNAVAILABLE' })
    expect(first.log.reason).toMatch(/ECONNREFUSED$/)
    expect(attemptsTo(upstream.port)).toBe(before + 1)

    for (let i = 0; i < 5; i++) {
      const r = await get('/held')
      expect(r.status).toBe(502)
      expect(r.log).toMatchObject({ status: 502, err: 'CB_ERR_UPSTREAM_UNAVAILABLE' })
      expect(r.log.reason).toMatch(/failing fast/)
    }
    expect(attemptsTo(upstream.port)).toBe(before + 1)
    expect(await failFastCount('held')).toBe(5)
    const warns = gw.logs.filter(l => l.msg === 'upstream refused a connection: failing fast')
    expect(warns).toHaveLength(1)
    expect(warns[0]).toMatchObject({ level: 'warn', origin: `http://127.0.0.1:${upstream.port}`, code: 'ECONNREFUSED', hold_ms: 1000 })
  })

  it('a WebSocket upgrade within the window is answered 502 without a connection attempt', async () => {
    const before = attemptsTo(upstream.port)
    const id = `hold-ws-${randomUUID()}`
    const r = await curl(['--http1.1', '--cacert', pki.ca.certFile, '--cert', pki.client1.certFile, '--key', pki.client1.keyFile, '-H', `X-Request-Id: ${id}`,
      '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `${gw.url(0)}/held`])
    expect(r.status).toBe(502)
    expect(JSON.parse(r.body)).toEqual({ message: 'An invalid response was received from the upstream server' })
    expect(await logFor(id)).toMatchObject({ status: 502 })
    expect(attemptsTo(upstream.port)).toBe(before)
    expect(await failFastCount('held')).toBe(6)
  })

  it('once the window is over one request tries again; a refused try starts a new window', async () => {
    const before = attemptsTo(upstream.port)
    clock += 1001
    const probe = await get('/held')
    expect(probe.status).toBe(502)
    expect(probe.log.reason).toMatch(/ECONNREFUSED$/)
    expect(attemptsTo(upstream.port)).toBe(before + 1)
    const next = await get('/held')
    expect(next.log.reason).toMatch(/failing fast/)
    expect(attemptsTo(upstream.port)).toBe(before + 1)
    // not a new outage: no second "refused" warning
    expect(gw.logs.filter(l => l.msg === 'upstream refused a connection: failing fast')).toHaveLength(1)
  })

  it('while the upstream keeps refusing, a warning at most every 10 s counts the requests answered at once', async () => {
    clock += 10_001
    expect((await get('/held')).log.reason).toMatch(/ECONNREFUSED$/) // the probe of the window that passed
    for (let i = 0; i < 2; i++) expect((await get('/held')).log.reason).toMatch(/failing fast/)
    const still = gw.logs.filter(l => l.msg === 'upstream still refusing connections: failing fast')
    expect(still).toHaveLength(1)
    // 5 + 1 (WebSocket) + 1 answered at once before, and the first of these two
    expect(still[0]).toMatchObject({ level: 'warn', origin: `http://127.0.0.1:${upstream.port}`, code: 'ECONNREFUSED', failed_fast: 8 })
    expect(await failFastCount('held')).toBe(9)
  })

  it('the first connection that succeeds ends the hold', async () => {
    await upstream.listen(upstream.port)
    const held = await get('/held')
    expect(held.log.reason).toMatch(/failing fast/) // still within the window: not tried, though it would work
    const connections = upstream.connections
    clock += 1001
    for (let i = 0; i < 3; i++) expect((await get('/held')).status).toBe(200)
    expect(upstream.connections).toBe(connections + 3)
    const back = await waitFor(() => gw.logs.find(l => l.msg === 'upstream accepts connections again: no longer failing fast'), 'the recovery line')
    expect(back).toMatchObject({ level: 'info', origin: `http://127.0.0.1:${upstream.port}`, failed_fast: 10 })
  })
})

describe('services[].connect_failure_hold: 0', () => {
  it('every request tries to connect, with its retries (retries: 2: three attempts each)', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await get('/nohold')
      expect(r.status).toBe(502)
      expect(r.log.reason).toMatch(/ECONNREFUSED after 2 retries$/)
    }
    expect(attemptsTo(refusedPort)).toBe(6)
    expect(await failFastCount('nohold')).toBe(0)
  })
})
