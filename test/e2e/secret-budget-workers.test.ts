/**
 * The client-secret failure budget (issue 12) holds across workers: with `gateway.workers: 2`, whichever worker a
 * connection lands on, a client_id gets `failures_per_minute` wrong-secret checks in all, not that many per worker.
 * Against the real process; every request on a new connection, handed to the workers in turn
 * (NODE_CLUSTER_SCHED_POLICY=rr), so both take failures; the access log says which worker answered. Bounded in count.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashSecret } from '../../src/authorization-server/secret-hash.js'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'

const BUDGET = 3

let pki: TestPki
let gw: CertboundProcess
let port: number
let ca: Buffer

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  ca = readFileSync(pki.ca.certFile)
  port = await freePort()
  const file = join(pki.dir, 'gateway.yml')
  writeFileSync(file, `_format_version: "3.0"
gateway:
  workers: 2
  listen:
    - address: 127.0.0.1:${port}
      tls: { cert: ${pki.server.certFile}, key: ${pki.server.keyFile} }
authorization_server:
  issuer: https://localhost:${port}
  client_secret_checks: { failures_per_minute: ${BUDGET} }
  clients:
    - { client_id: victim, token_endpoint_auth_method: client_secret_basic, client_secret_hash: "${await hashSecret('right-secret')}", scope: a }
`)
  const before = process.env.NODE_CLUSTER_SCHED_POLICY
  process.env.NODE_CLUSTER_SCHED_POLICY = 'rr'
  try { gw = startCertbound(file) } finally {
    if (before === undefined) delete process.env.NODE_CLUSTER_SCHED_POLICY
    else process.env.NODE_CLUSTER_SCHED_POLICY = before
  }
  await waitFor('the workers to answer', async () => (await token('victim', 'right-secret', 'warm-0')).status === 200 ? true : undefined, 30_000)
  // the real client's secret verified at both workers before the attack (each caches a good secret it checked);
  // round-robin starts once both workers listen, so a few requests may land on the first one
  await waitFor('the right secret verified at both workers', async () => {
    expect((await token('victim', 'right-secret', 'warm')).status).toBe(200)
    const pids = new Set(gw.logs.filter(l => l.msg === 'request' && typeof l.req_id === 'string' && l.req_id.startsWith('warm')).map(l => l.pid))
    return pids.size === 2 ? true : undefined
  }, 20_000)
}, 120_000)

afterAll(async () => {
  await gw?.kill()
  pki?.cleanup()
})

/** One token request on a connection of its own (no agent: the kernel picks the worker for each). */
function token (id: string, secret: string, requestId: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port, path: '/oauth2/token', method: 'POST', servername: 'localhost', ca, agent: false, timeout: 20_000,
      headers: { 'x-request-id': requestId, authorization: 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
    }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 20 s')))
    req.on('error', reject)
    req.end('grant_type=client_credentials')
  })
}

describe('issue 12: the client-secret failure budget across workers', () => {
  it(`${BUDGET} wrong secrets in all get 401, then 429 at every worker; the right secret (verified before) still works`, async () => {
    const statuses: number[] = []
    for (let i = 0; i < 4 * BUDGET; i++) statuses.push((await token('victim', randomBytes(12).toString('hex'), `wrong-${i}`)).status)
    // per-worker budgets would have given up to 2 × BUDGET 401s
    expect(statuses.filter(s => s === 401)).toHaveLength(BUDGET)
    expect(statuses.slice(BUDGET)).toEqual(Array(3 * BUDGET).fill(429))
    const lines = await waitFor('the access lines of the wrong secrets', async () => {
      const l = gw.logs.filter(x => x.msg === 'request' && typeof x.req_id === 'string' && x.req_id.startsWith('wrong-'))
      return l.length === 4 * BUDGET ? l : undefined
    })
    const failedAt = new Set(lines.filter(l => l.status === 401).map(l => l.pid))
    expect(failedAt.size).toBe(2) // both workers spent the one budget
    for (let i = 0; i < 2; i++) expect((await token('victim', 'right-secret', `after-${i}`)).status).toBe(200)
  }, 60_000)
})
