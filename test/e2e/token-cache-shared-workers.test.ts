/**
 * Issue 14: the shared tier of the verified-token cache across `gateway.workers: 2` with the memory store (the
 * primary's state, reached over IPC): one token, sent over new connections until both workers have answered it, is
 * introspected once. Deterministic for requests one after another: the worker that asked the IdP writes the answer
 * to the primary before it answers the client, so the next request, wherever it lands, finds it there. (Two first
 * requests arriving at two workers at the same instant may each ask the IdP: single flight is per process; that is
 * not asserted here.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'
import { curl } from '../helpers/curl.js'
import { startIntrospectionServer, type IntrospectionServer } from '../unit/helpers/introspection-server.js'

let pki: TestPki
let dir: string
let idp: IntrospectionServer
let gw: CertboundProcess | undefined
let port: number
let admin: string

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  dir = mkdtempSync(join(tmpdir(), 'cb-tokcache-workers-'))
  idp = await startIntrospectionServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.ca.certPem })
  port = await freePort()
  const adminPort = await freePort()
  admin = `http://127.0.0.1:${adminPort}`
  const file = join(dir, 'gateway.yml')
  writeFileSync(file, `_format_version: "3.0"
gateway:
  workers: 2
  listen:
    - address: 127.0.0.1:${port}
  admin_listen: 127.0.0.1:${adminPort}
  trusted_certificates: ${pki.ca.certFile}
services:
  - name: api
    url: http://127.0.0.1:9/unused
    routes:
      - name: intro
        paths: [/intro]
        plugins:
          - name: token-introspection
            config:
              introspection_endpoint: ${idp.url}
              client_id: gateway
              client_secret: secret
              ttl: 60
          - name: request-termination
            config: { status_code: 200, message: ok }
`)
  gw = startCertbound(file, ['--no-watch'])
  await waitFor('the gateway is ready', async () => {
    if (gw!.proc.exitCode !== null) throw new Error(`exited: ${gw!.stderr}`)
    const r = await request(admin + '/status/ready').catch(() => undefined)
    if (r === undefined) return undefined
    await r.body.text()
    return r.statusCode === 200 ? true : undefined
  }, 30_000)
}, 200_000)

afterAll(async () => {
  if (gw !== undefined) {
    gw.proc.kill('SIGTERM')
    const t = setTimeout(() => { void gw!.kill() }, 8000)
    await gw.exited
    clearTimeout(t)
  }
  await idp?.close()
  pki?.cleanup()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

/** Workers (pids) that answered /intro for the access-log lines after `from`. */
function answeredBy (from: number): Set<number> {
  return new Set(gw!.logs.slice(from).filter(l => l.path === '/intro' && l.status === 200).map(l => l.pid as number))
}

describe('verified-token cache, shared tier: gateway.workers 2, memory store', () => {
  it('one token through both workers (new connections, one after another) is introspected once', async () => {
    const t = `opaque-${Math.random().toString(36).slice(2)}`
    const now = Math.floor(Date.now() / 1000)
    idp.tokens.set(t, { json: { active: true, scope: 'system-access', client_id: 'svc', sub: 'svc', exp: now + 300, iat: now } })
    const from = gw!.logs.length
    let n = 0
    // each curl is a new connection; the cluster hands connections to both workers (round robin)
    while (n < 20 && (answeredBy(from).size < 2 || n < 4)) {
      const r = await curl(['-H', `Authorization: Bearer ${t}`, `http://127.0.0.1:${port}/intro`])
      expect(r.status).toBe(200)
      n++
      await waitFor('the access-log line', () => gw!.logs.slice(from).filter(l => l.path === '/intro').length >= n ? true : undefined, 5000)
    }
    expect(answeredBy(from).size).toBe(2)
    expect(idp.calls(t)).toBe(1)
    expect(gw!.logs.some(l => JSON.stringify(l).includes(t))).toBe(false)
  })
})
