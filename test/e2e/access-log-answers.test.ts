/**
 * The access log is true for every answer (issue 16): `bytes` is the body the client got, also when the gateway
 * wrote it (an error, request-termination, its echo); `err` names a failure only (a 200 from request-termination
 * is not one).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startGateway, type TestGateway, type LogLine } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'

let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
services:
  - name: none
    url: http://127.0.0.1:9
    routes:
      - name: fixed
        paths: [/fixed]
        plugins:
          - name: request-termination
            config: { status_code: 200, body: "hello, world", content_type: text/plain }
      - name: echo
        paths: [/echo]
        plugins:
          - name: request-termination
            config: { status_code: 200, echo: true }
      - name: closed
        paths: [/closed]
        plugins:
          - name: request-termination
            config: { status_code: 503 }
`, { logLevel: 'info' })
})
afterAll(async () => { await gw?.close() })

async function lineFor (path: string): Promise<LogLine> {
  const r = await curl([`${gw.url()}${path}`])
  const deadline = Date.now() + 5000
  for (;;) {
    const l = gw.logs.find(x => x.msg === 'request' && x.path === path)
    if (l !== undefined) return { ...l, got: Buffer.byteLength(r.body), status_seen: r.status }
    if (Date.now() > deadline) throw new Error(`no access line for ${path}`)
    await new Promise(res => setTimeout(res, 20))
  }
}

describe('access log: bytes and err for answers the gateway writes itself', () => {
  it('request-termination 200 with a body: bytes = the body, no err', async () => {
    const l = await lineFor('/fixed')
    expect(l.status).toBe(200)
    expect(l.bytes).toBe(12)
    expect(l.bytes).toBe(l.got)
    expect(l.err).toBeUndefined()
    expect(l.reason).toBeUndefined()
  })

  it('request-termination echo: bytes = the echoed JSON, no err', async () => {
    const l = await lineFor('/echo')
    expect(l.status).toBe(200)
    expect(l.bytes).toBeGreaterThan(20)
    expect(l.bytes).toBe(l.got)
    expect(l.err).toBeUndefined()
  })

  it('request-termination 503: bytes = {"message":...}, err = CB_ERR_TERMINATED', async () => {
    const l = await lineFor('/closed')
    expect(l.status).toBe(503)
    expect(l.bytes).toBe(l.got)
    expect(l.bytes).toBeGreaterThan(0)
    expect(l.err).toBe('CB_ERR_TERMINATED')
  })

  it('no route: 404 with its bytes and CB_ERR_NO_ROUTE', async () => {
    const l = await lineFor('/nowhere')
    expect(l.status).toBe(404)
    expect(l.bytes).toBe(l.got)
    expect(l.bytes).toBeGreaterThan(0)
    expect(l.err).toBe('CB_ERR_NO_ROUTE')
  })
})
