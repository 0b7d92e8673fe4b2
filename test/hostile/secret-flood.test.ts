/**
 * Issue 12 (4): wrong client secrets must not starve the thread pool. 64 keep-alive connections send wrong
 * secrets to the token endpoint (half a fresh secret each time, so every one needs scrypt; half the same one,
 * which the failure cache answers without scrypt) while an unrelated route is timed: its p99 stays within 2× of
 * idle (plus a small allowance for a loaded test machine). Once the client's failure budget is spent its new
 * secrets get 429 temporarily_unavailable with Retry-After and no scrypt (beyond the queue: 503), and a client whose
 * secret verified before keeps working.
 * Against the real process; the flood is bounded in time and count.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { Agent, request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashSecret } from '../../src/authorization-server/secret-hash.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

/** Lower than the default 20, so that the budget is spent within the short flood even on a slow machine. */
const FAILURES_PER_MINUTE = 5

let pki: TestPki
let up: Upstream
let gw: CertboundProcess
let port: number
let ca: Buffer

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  ca = readFileSync(pki.ca.certFile)
  up = await startUpstream()
  port = await freePort()
  const hash = await hashSecret('right-secret')
  const file = join(pki.dir, 'gateway.yml')
  writeFileSync(file, `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:${port}
      tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} }
  access_log: false
authorization_server:
  issuer: https://localhost:${port}
  client_secret_checks: { failures_per_minute: ${FAILURES_PER_MINUTE} }
  clients:
    - { client_id: victim, token_endpoint_auth_method: client_secret_basic, client_secret_hash: "${hash}", scope: a }
    - { client_id: other, token_endpoint_auth_method: client_secret_basic, client_secret_hash: "${hash}", scope: a }
services:
  - name: up
    url: ${up.url}
    routes: [{ name: open, paths: [/open] }]
`)
  gw = startCertbound(file)
  await waitFor('the gateway to listen', async () => (await send(new Agent({ ca }), '/open')).status === 200 ? true : undefined, 30_000)
}, 240_000)

afterAll(async () => {
  await gw?.kill()
  await up?.close()
  pki?.cleanup()
})

interface Answer { status: number, ms: number, retryAfter: string | undefined, body: string }

function send (agent: Agent, path: string, form?: { id: string, secret: string }): Promise<Answer> {
  const t0 = performance.now()
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {}
    if (form !== undefined) {
      headers.authorization = 'Basic ' + Buffer.from(`${form.id}:${form.secret}`).toString('base64')
      headers['content-type'] = 'application/x-www-form-urlencoded'
    }
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: form === undefined ? 'GET' : 'POST', servername: 'localhost', agent, headers, timeout: 20_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, retryAfter: res.headers['retry-after'], body }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')))
    req.on('error', reject)
    req.end(form === undefined ? undefined : 'grant_type=client_credentials')
  })
}

async function p99 (agent: Agent, n: number): Promise<number> {
  const ms: number[] = []
  for (let i = 0; i < n; i++) {
    const r = await send(agent, '/open')
    expect(r.status).toBe(200)
    ms.push(r.ms)
  }
  ms.sort((a, b) => a - b)
  return ms[Math.floor(n * 0.99) - 1]!
}

/**
 * Each attacker connection sends its next wrong secret this long after an answer: 64 connections then offer up to
 * ~64 requests/s (half of them needing scrypt), several times the 11 failures/s of the probe. (Without a pause a loop of fast
 * 503s is a plain request flood, which any route answers at the cost of the event loop: rate limiting, issue 15.)
 */
const FLOOD_PAUSE_MS = 1000

describe('issue 12 (4): a flood of wrong client secrets', () => {
  it('leaves an unrelated route\'s p99 within 2× of idle; beyond the queue 503 + Retry-After; a verified client keeps working', async () => {
    const probe = new Agent({ ca, keepAlive: true, maxSockets: 1 })
    const token = new Agent({ ca, keepAlive: true, maxSockets: 1 })
    // the legitimate client verified its secret before the flood (a successful check is cached)
    expect((await send(token, '/oauth2/token', { id: 'other', secret: 'right-secret' })).status).toBe(200)
    await p99(probe, 30) // warm up
    const idle = await p99(probe, 150)

    const flood = new Agent({ ca, keepAlive: true, maxSockets: 64 })
    const statuses = new Map<number, number>()
    const retryAfter: Record<number, string | undefined> = {}
    let stop = false
    const deadline = Date.now() + 15_000
    const attackers = Array.from({ length: 64 }, async (_, i) => {
      for (let n = 0; n < 400 && !stop && Date.now() < deadline; n++) {
        const secret = i % 2 === 0 ? randomBytes(12).toString('hex') : 'the-same-wrong-secret'
        const r = await send(flood, '/oauth2/token', { id: 'victim', secret })
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
        if (r.status === 503 || r.status === 429) retryAfter[r.status] = r.retryAfter
        await new Promise(res => setTimeout(res, FLOOD_PAUSE_MS))
      }
    })
    // let the flood build up: every attacker connection open (its TLS handshake done) and answered once
    await waitFor('the flood to be under way', () => [...statuses.values()].reduce((a, b) => a + b, 0) >= 64 ? true : undefined, 20_000)
    // best of three samples: a 2-core machine shared with other test runs has pauses of its own (load average > 10
    // seen), which a single p99 of a short sample would charge to the gateway
    let during = Number.POSITIVE_INFINITY
    for (let i = 0; i < 3 && during > 2 * idle + 5; i++) during = Math.min(during, await p99(probe, 100))
    const legit = await send(token, '/oauth2/token', { id: 'other', secret: 'right-secret' })
    stop = true
    await Promise.all(attackers)
    flood.destroy()
    // the machine's own load drifts (other test files run alongside): idle is the worse of before and after
    const idleAfter = await p99(probe, 150)
    probe.destroy(); token.destroy()

    console.log(`issue 12 (4): /open p99 idle ${idle.toFixed(1)} ms / ${idleAfter.toFixed(1)} ms after, during the flood ${during.toFixed(1)} ms; token endpoint answers ${JSON.stringify(Object.fromEntries(statuses))}`)
    expect(legit.status).toBe(200)
    expect(statuses.get(401) ?? 0).toBeGreaterThan(0)
    expect([...statuses.keys()].every(s => s === 401 || s === 429 || s === 503)).toBe(true)
    if (statuses.has(503)) expect(retryAfter[503]).toBe('1')
    if (statuses.has(429)) expect(Number(retryAfter[429])).toBeGreaterThanOrEqual(1)
    // the victim's failure budget is spent after a few failures (however slow scrypt is here): then 429 at once,
    // with Retry-After, and no scrypt
    const after = new Agent({ ca, keepAlive: true, maxSockets: 1 })
    let last: Answer | undefined
    for (let i = 0; i < FAILURES_PER_MINUTE + 3 && last?.status !== 429; i++) last = await send(after, '/oauth2/token', { id: 'victim', secret: randomBytes(12).toString('hex') })
    expect(last?.status).toBe(429)
    expect(JSON.parse(last!.body)).toMatchObject({ error: 'temporarily_unavailable' })
    expect(Number(last!.retryAfter)).toBeGreaterThanOrEqual(1)
    expect(last!.ms).toBeLessThan(1000)
    // the verified secret of the victim's neighbour still works; so would the victim's own once verified
    expect((await send(after, '/oauth2/token', { id: 'other', secret: 'right-secret' })).status).toBe(200)
    after.destroy()
    // 2× of idle, plus 5 ms for a shared 2-core test machine (before the fix: p90 55 ms, max 683 ms)
    expect(during).toBeLessThanOrEqual(2 * Math.max(idle, idleAfter) + 5)
  }, 60_000)
})
