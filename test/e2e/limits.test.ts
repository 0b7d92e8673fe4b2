/**
 * gateway.limits (issue 6, "Limits, with defaults a user can change"): max_header_size (431), max_body_size (413 for
 * a Content-Length or a chunked body past it; 0 = unlimited, streamed), header_timeout and request_timeout (a
 * slowloris connection is answered 408 and closed), keepalive_timeout, drain_timeout; the documented defaults; a
 * reload changes the limits of listeners it keeps.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { openConnection } from '../helpers/http1.js'
import { ConfigError } from '../../src/config/diagnostic.js'
import { TIMEOUT_CHECK_MS } from '../../src/server/listeners.js'

let up: Upstream
let gw: TestGateway
let defaults: TestGateway

const config = (limits: string): string => `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
${limits}services:
  - name: echo
    url: ${up.url}
    routes:
      - { name: a, paths: [/a] }
`
const SMALL = `  limits:
    max_header_size: 4096
    max_body_size: 1024
    header_timeout: 1000
    request_timeout: 2000
    keepalive_timeout: 500
    drain_timeout: 500
`

beforeAll(async () => {
  up = await startUpstream()
  gw = await startGateway(config(SMALL))
  defaults = await startGateway(config(''))
})

afterAll(async () => {
  await gw?.close()
  await defaults?.close()
  await up?.close()
})

/** Write `raw` to a fresh connection and collect everything until the server closes it (bounded by `ms`). */
function exchange (port: number, raw: string | Buffer, ms = 5000): Promise<{ text: string, closedAfterMs: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now()
    let text = ''
    const s: Socket = connect(port, '127.0.0.1', () => s.write(raw))
    s.setEncoding('latin1')
    s.on('data', (d: string) => { text += d })
    s.on('error', () => undefined)
    s.on('close', () => { clearTimeout(timer); resolve({ text, closedAfterMs: Date.now() - t0 }) })
    const timer = setTimeout(() => s.destroy(), ms)
  })
}

const statusOf = (text: string): number | undefined => { const m = /^HTTP\/1\.1 (\d{3})/.exec(text); return m === null ? undefined : Number(m[1]) }
const received = (path: string): boolean => up.requests.some(r => r.url === path)

describe('defaults (no gateway.limits section)', () => {
  it('are the documented ones', () => {
    expect(defaults.gateway.current().config.settings.limits).toEqual({
      max_header_size: 16384, max_body_size: 0, header_timeout: 10_000, request_timeout: 60_000, keepalive_timeout: 60_000, drain_timeout: 10_000,
      max_header_count: 2000, handshake_timeout: 10_000, max_handshakes_in_progress: 1024, max_handshakes_per_address: 256,
    })
    // timeouts are enforced within a quarter second of their value, not node's 30 s check interval
    expect(TIMEOUT_CHECK_MS).toBeLessThanOrEqual(250)
  })

  it('max_header_size 16384: a 15 kB header passes, a 17 kB one gets 431', async () => {
    const c = await openConnection({ port: defaults.port() })
    expect((await c.request('GET', '/a/h15', { 'x-big': 'x'.repeat(15_000) })).status).toBe(200)
    c.close()
    const r = await exchange(defaults.port(), `GET /a/h17 HTTP/1.1\r\nhost: localhost\r\nx-big: ${'x'.repeat(17_000)}\r\n\r\n`)
    expect(statusOf(r.text)).toBe(431)
    expect(received('/h17')).toBe(false)
  })

  it('max_body_size 0: unlimited and streamed, with Content-Length and chunked', async () => {
    const size = 8 * 1024 * 1024
    const r1 = await request(`${defaults.url()}/a/cl`, { method: 'POST', body: Buffer.alloc(size, 1) })
    expect(r1.statusCode).toBe(200)
    expect(((await r1.body.json()) as { body_bytes: number }).body_bytes).toBe(size)
    async function * chunks (): AsyncGenerator<Buffer> { for (let i = 0; i < 8; i++) yield Buffer.alloc(1024 * 1024, 2) }
    const r2 = await request(`${defaults.url()}/a/chunked`, { method: 'POST', body: Readable.from(chunks()) })
    expect(r2.statusCode).toBe(200)
    expect(((await r2.body.json()) as { body_bytes: number }).body_bytes).toBe(size)
  })
})

describe('gateway.limits.max_header_size', () => {
  it('4096: a 3000-byte header passes; 5000 bytes get 431 and the connection is closed, nothing reaches the upstream', async () => {
    const c = await openConnection({ port: gw.port() })
    expect((await c.request('GET', '/a/h3', { 'x-big': 'x'.repeat(3000) })).status).toBe(200)
    c.close()
    const r = await exchange(gw.port(), `GET /a/h5 HTTP/1.1\r\nhost: localhost\r\nx-big: ${'x'.repeat(5000)}\r\n\r\n`)
    expect(statusOf(r.text)).toBe(431)
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i)
    expect(received('/h5')).toBe(false)
  })
})

describe('gateway.limits.max_body_size', () => {
  it('1024: Content-Length 1000 passes; 2000 gets 413 at once and the connection is closed, nothing reaches the upstream', async () => {
    const c = await openConnection({ port: gw.port() })
    const ok = await c.request('POST', '/a/b1000', {}, 'x'.repeat(1000))
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body)).toMatchObject({ body_bytes: 1000 })
    c.close()
    // only the head is sent: the 413 must not wait for a body that is too large anyway
    const r = await exchange(gw.port(), 'POST /a/b2000 HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2000\r\n\r\n')
    expect(statusOf(r.text)).toBe(413)
    expect(r.text).toMatch(/\r\nconnection: close\r\n/i)
    expect(r.closedAfterMs).toBeLessThan(2000)
    expect(received('/b2000')).toBe(false)
  })

  it('1024, chunked: 800 bytes pass; 3 × 600 bytes get 413 once the limit is passed, and no complete request reaches the upstream', async () => {
    const small = await exchange(gw.port(), 'POST /a/c800 HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n190\r\n' + 'x'.repeat(400) + '\r\n190\r\n' + 'y'.repeat(400) + '\r\n0\r\n\r\n')
    expect(statusOf(small.text)).toBe(200)
    expect(up.requests.find(q => q.url === '/c800')?.bodyBytes).toBe(800)
    const chunk = '258\r\n' + 'z'.repeat(600) + '\r\n'
    const r = await exchange(gw.port(), 'POST /a/c1800 HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n' + chunk + chunk + chunk + '0\r\n\r\n')
    expect(statusOf(r.text)).toBe(413)
    expect(received('/c1800')).toBe(false)
    const logged = gw.logs.find(l => l.msg === 'request' && l.path === '/a/c1800')
    expect(logged).toMatchObject({ status: 413, err: 'CB_ERR_BODY_TOO_LARGE' })
  })
})

describe('gateway.limits.header_timeout and request_timeout (slowloris)', () => {
  it('header_timeout 1000: a client sending one header byte per second gets 408 and is disconnected within ~1 s', async () => {
    const head = 'GET /a/slowloris HTTP/1.1\r\nhost: localhost\r\nx-slow: ' + 'a'.repeat(100)
    const r = await new Promise<{ text: string, closedAfterMs: number, sent: number }>((resolve) => {
      const t0 = Date.now()
      let text = ''
      let sent = 0
      const s = connect(gw.port(), '127.0.0.1')
      s.setEncoding('latin1')
      const iv = setInterval(() => { if (sent < head.length && !s.destroyed) s.write(head[sent++]) }, 1000)
      s.on('connect', () => { s.write(head[sent++]) })
      s.on('data', (d: string) => { text += d })
      s.on('error', () => undefined)
      s.on('close', () => { clearInterval(iv); clearTimeout(guard); resolve({ text, closedAfterMs: Date.now() - t0, sent }) })
      const guard = setTimeout(() => s.destroy(), 10_000)
    })
    expect(statusOf(r.text)).toBe(408)
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(900)
    expect(r.closedAfterMs).toBeLessThan(2500)
    expect(r.sent).toBeLessThanOrEqual(3)
  })

  it('request_timeout 2000: headers on time, then a body trickled byte by byte: 408 and closed within ~2 s', async () => {
    const r = await new Promise<{ text: string, closedAfterMs: number }>((resolve) => {
      const t0 = Date.now()
      let text = ''
      const s = connect(gw.port(), '127.0.0.1')
      s.setEncoding('latin1')
      let iv: NodeJS.Timeout | undefined
      s.on('connect', () => {
        s.write('POST /a/trickle HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n')
        iv = setInterval(() => { if (!s.destroyed) s.write('x') }, 400)
      })
      s.on('data', (d: string) => { text += d })
      s.on('error', () => undefined)
      s.on('close', () => { clearInterval(iv); clearTimeout(guard); resolve({ text, closedAfterMs: Date.now() - t0 }) })
      const guard = setTimeout(() => s.destroy(), 10_000)
    })
    expect(statusOf(r.text)).toBe(408)
    expect(r.closedAfterMs).toBeGreaterThanOrEqual(1900)
    expect(r.closedAfterMs).toBeLessThan(3500)
    expect(received('/trickle')).toBe(false)
  })

  it('header_timeout above request_timeout is a config error with its position', async () => {
    const err = await startGateway(config('  limits:\n    header_timeout: 5000\n    request_timeout: 1000\n')).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).diagnostics).toEqual([expect.objectContaining({ line: 6, col: 21, code: 'CB_CFG_INVALID', path: 'gateway.limits.header_timeout', message: 'must be at most request_timeout (1000)' })])
  })
})

describe('gateway.limits.keepalive_timeout', () => {
  it('500: an idle keep-alive connection is closed by the gateway after 0.5 s (+ node\'s 1 s grace), not before', async () => {
    const c = await openConnection({ port: gw.port() })
    const t0 = Date.now()
    expect((await c.request('GET', '/a/ka')).status).toBe(200)
    const closedAt = await Promise.race([c.closedAt, new Promise<number>(r => setTimeout(() => r(-1), 5000))])
    expect(closedAt).toBeGreaterThan(0)
    // node closes keepAliveTimeout + 1 s after the response, so that a client honouring the Keep-Alive: timeout=N
    // header it advertises closes first
    expect(closedAt - t0).toBeGreaterThanOrEqual(400)
    expect(closedAt - t0).toBeLessThan(2500)
  })
})

describe('gateway.limits.drain_timeout', () => {
  it('500: close() waits for in-flight requests at most 0.5 s, then closes their connections', async () => {
    const g = await startGateway(config(SMALL))
    const seen = up.requests.length
    up.handler = (_req, res) => { setTimeout(() => { if (!res.destroyed) { res.writeHead(200); res.end('late') } }, 5000) }
    try {
      const inflight = request(`${g.url()}/a/stuck`).then(r => r.statusCode, (e: Error) => e.message)
      while (up.requests.length === seen) await new Promise(r => setTimeout(r, 10))
      const t0 = Date.now()
      await g.gateway.close()
      expect(Date.now() - t0).toBeLessThan(1500)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(450)
      expect(await inflight).not.toBe(200)
    } finally {
      up.handler = undefined
      await g.close()
    }
  })
})

describe('a reload changes the limits of the listeners it keeps', () => {
  it('max_header_size 4096 → 2048 and max_body_size 1024 → 100 apply to the next requests on the same port', async () => {
    const g = await startGateway(config(SMALL))
    try {
      const before = await openConnection({ port: g.port() })
      expect((await before.request('GET', '/a/r1', { 'x-big': 'x'.repeat(3000) })).status).toBe(200)
      before.close()
      const r = await g.gateway.reload(config(SMALL.replace('max_header_size: 4096', 'max_header_size: 2048').replace('max_body_size: 1024', 'max_body_size: 100')))
      expect(r.ok).toBe(true)
      const after = await exchange(g.port(), `GET /a/r2 HTTP/1.1\r\nhost: localhost\r\nx-big: ${'x'.repeat(3000)}\r\n\r\n`)
      expect(statusOf(after.text)).toBe(431)
      const body = await exchange(g.port(), 'POST /a/r3 HTTP/1.1\r\nhost: localhost\r\ncontent-length: 200\r\n\r\n')
      expect(statusOf(body.text)).toBe(413)
    } finally {
      await g.close()
    }
  })
})
