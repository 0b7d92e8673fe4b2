/**
 * WebSocket upgrades are a mode of the one request path: the service's pool (gateway.trusted_certificates for an
 * https upstream), in-flight accounting that reload and shutdown drain with drain_timeout, the access log and the
 * request metrics when the tunnel closes, and upstream failures of an open tunnel logged and counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:https'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { createHash, randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/process.js'

let pki: TestPki
let upstream: Server
let gw: TestGateway
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

function yaml (drainMs: number, extraRoute = ''): string {
  const port = (upstream.address() as { port: number }).port
  return `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
  trusted_certificates: ${pki.ca.certFile}
  limits:
    drain_timeout: ${drainMs}
services:
  - name: wss
    url: https://localhost:${port}
    routes:
      - name: chat
        paths: [/chat]
        strip_path: false
${extraRoute}`
}

beforeAll(async () => {
  pki = await createTestPki()
  // a TLS upstream whose certificate only gateway.trusted_certificates makes trusted
  upstream = createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
    res.writeHead(403, { 'content-type': 'text/plain' })
    res.end('no websockets here')
  })
  // the TCP sockets under the TLS ones, by client port: a reset (RST) is sent on the TCP socket
  const tcp = new Map<number, Socket>()
  upstream.on('connection', (s: Socket) => { tcp.set(s.remotePort ?? 0, s); s.once('close', () => tcp.delete(s.remotePort ?? 0)) })
  upstream.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (req.url === '/chat/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nrefused')
      return
    }
    const accept = createHash('sha1').update(String(req.headers['sec-websocket-key']) + GUID).digest('base64')
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
    if (head.length > 0) socket.write(head)
    if (req.url === '/chat/reset') { setTimeout(() => tcp.get(socket.remotePort ?? 0)?.resetAndDestroy(), 50); return }
    socket.pipe(socket)
  })
  await new Promise<void>(r => upstream.listen(0, '127.0.0.1', r))
  gw = await startGateway(yaml(300))
})

afterAll(async () => {
  await gw?.close()
  upstream?.closeAllConnections()
  await new Promise(r => upstream?.close(r))
  pki?.cleanup()
})

function open (path: string): Promise<{ res: IncomingMessage, socket: Socket | undefined, body?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${gw.url()}${path}`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': Buffer.from(randomUUID()).toString('base64'), 'Sec-WebSocket-Version': '13' },
    })
    req.on('upgrade', (res, socket) => resolve({ res, socket: socket as Socket }))
    req.on('response', (res) => { let body = ''; res.on('data', (c: Buffer) => { body += c.toString() }); res.on('end', () => resolve({ res, socket: undefined, body })) })
    req.on('error', reject)
    req.end()
  })
}

async function echo (socket: Socket, text: string): Promise<string> {
  let got = ''
  const onData = (c: Buffer): void => { got += c.toString() }
  socket.on('data', onData)
  socket.write(text)
  await waitFor('the echo', () => got.length >= text.length ? true : undefined, 5000)
  socket.off('data', onData)
  return got
}

async function metric (prefix: string): Promise<number> {
  const text = await gw.gateway.metrics.registry.metrics()
  const l = text.split('\n').find(x => x.startsWith(prefix + ' '))
  return l === undefined ? 0 : Number(l.slice(prefix.length + 1))
}

const closed = (s: Socket): Promise<void> => new Promise(r => { if (s.destroyed) r(); else s.once('close', () => r()) })

describe('WebSocket to an https upstream', () => {
  it('verifies the upstream with gateway.trusted_certificates (the service pool), counts the tunnel in flight, logs it when it closes', async () => {
    const { res, socket } = await open('/chat/room')
    expect(res.statusCode).toBe(101)
    const id = res.headers['x-request-id']
    expect(typeof id).toBe('string')
    expect(await echo(socket!, 'hello')).toBe('hello')
    expect(await metric('certbound_http_requests_in_flight')).toBe(1)
    socket!.destroy()
    const line = await waitFor('the access-log line', () => gw.logs.find(l => l.msg === 'request' && l.req_id === id), 5000)
    expect(line).toMatchObject({ route: 'chat', status: 101, path: '/chat/room' })
    await waitFor('in flight back to 0', async () => await metric('certbound_http_requests_in_flight') === 0 ? true : undefined, 5000)
    expect(await metric('certbound_http_requests_total{route="chat",status="101"}')).toBeGreaterThanOrEqual(1)
  })

  it('relays the upstream refusing the upgrade', async () => {
    const { res, socket, body } = await open('/chat/refuse')
    expect(socket).toBeUndefined()
    expect(res.statusCode).toBe(403)
    expect(body).toBe('refused')
  })

  it('an upstream that resets an open tunnel is logged and counted', async () => {
    const before = await metric('certbound_upstream_errors_total{service="wss",kind="websocket_ECONNRESET"}')
    const { res, socket } = await open('/chat/reset')
    expect(res.statusCode).toBe(101)
    await closed(socket!)
    await waitFor('the warning', () => gw.logs.find(l => l.msg === 'websocket upstream failed; tunnel closed'), 5000)
    expect(await metric('certbound_upstream_errors_total{service="wss",kind="websocket_ECONNRESET"}')).toBe(before + 1)
  })
})

describe('RFC 6455 §4.1: a handshake is a GET without a body', () => {
  it('an upgrade that announces a body is refused (400) with the request id', async () => {
    const { connect } = await import('node:net')
    const port = Number(new URL(gw.url()).port)
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => s.end('GET /chat/x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello'))
      let got = ''
      s.on('data', (c: Buffer) => { got += c.toString() })
      s.on('close', () => resolve(got))
      s.on('error', reject)
    })
    expect(answer).toMatch(/^HTTP\/1\.1 400 /)
    expect(answer).toMatch(/x-request-id: /)
  })
})

describe('drain: reload and shutdown wait for tunnels up to drain_timeout', () => {
  it('a reload leaves an open tunnel working until drain_timeout, then closes it', async () => {
    const { socket } = await open('/chat/a')
    const t0 = Date.now()
    const r = await gw.gateway.reload(yaml(400, `      - name: other
        paths: [/other]
`))
    expect(r.ok).toBe(true)
    expect(await echo(socket!, 'still open')).toBe('still open')
    await closed(socket!)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250) // the old runtime's drain_timeout was 300 ms
    const { res, socket: s2 } = await open('/chat/b') // the new runtime serves new upgrades
    expect(res.statusCode).toBe(101)
    s2!.destroy()
  })

  it('close() waits for an open tunnel, then closes it at drain_timeout', async () => {
    const g = await startGateway(yaml(300))
    const before = gw
    gw = g
    try {
      const { socket } = await open('/chat/c')
      const t0 = Date.now()
      const closing = g.gateway.close(300)
      expect(await echo(socket!, 'during drain')).toBe('during drain')
      await closed(socket!)
      await closing
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
    } finally { gw = before }
  })
})
