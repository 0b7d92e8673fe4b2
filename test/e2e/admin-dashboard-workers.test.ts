/**
 * gateway.workers: 2 — the primary serves the admin listener, so its /api/summary must add up what the workers
 * counted (as its /metrics does): requests per route, refusals by code, and the primary's own reload history.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'

interface Summary {
  gateway: { workers?: number, reporting_workers?: number }
  routes: Array<{ name: string, requests_total: number, status_total: Record<string, number>, series: number[] }>
  refusals: Array<{ code: string, total: number }>
  reloads: { applied: number, refused: number }
  store: { backend: string, connected: boolean }
}

let up: Upstream
let dir: string
let proc: CertboundProcess | undefined

beforeAll(async () => {
  await ensureDist()
  up = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'certbound-dash-workers-'))
}, 180_000)

afterAll(async () => {
  await proc?.kill()
  await up?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

describe('gateway.workers: 2, GET /api/summary on the primary', () => {
  it('adds up the workers\' requests and refusals', async () => {
    const port = await freePort()
    const adminPort = await freePort()
    const file = join(dir, 'gateway.yml')
    const yaml = `_format_version: "3.0"
gateway:
  workers: 2
  admin_listen: 127.0.0.1:${adminPort}
  listen:
    - address: 127.0.0.1:${port}
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: a
        paths: [/a]
`
    writeFileSync(file, yaml)
    proc = startCertbound(file, ['--no-watch'])
    const admin = `http://127.0.0.1:${adminPort}`
    await waitFor('two ready workers', async () => {
      try { const r = await request(`${admin}/status/ready`); await r.body.dump(); return r.statusCode === 200 ? true : undefined } catch { return undefined }
    }, 20_000)

    // a fresh connection per request, so the kernel spreads them over both workers
    const N = 24
    await Promise.all(Array.from({ length: N }, async (_, i) => {
      const agent = new Agent({ pipelining: 0 })
      try {
        const r = await request(`http://127.0.0.1:${port}${i % 4 === 0 ? '/nowhere' : '/a'}`, { dispatcher: agent })
        await r.body.dump()
      } finally { await agent.close() }
    }))
    const bad = await request(`${admin}/config`, { method: 'POST', body: yaml.replace('paths: [/a]', 'pahts: [/a]'), headers: { 'content-type': 'application/yaml' } })
    await bad.body.dump()
    expect(bad.statusCode).toBe(400)

    const r = await request(`${admin}/api/summary`, { headersTimeout: 5000, bodyTimeout: 5000 })
    expect(r.statusCode).toBe(200)
    const s = await r.body.json() as Summary
    expect(s.gateway).toMatchObject({ workers: 2, reporting_workers: 2 })
    const a = s.routes.find(x => x.name === 'a')!
    expect(a.requests_total).toBe(N * 3 / 4)
    expect(a.status_total['2xx']).toBe(N * 3 / 4)
    expect(a.series.reduce((x, y) => x + y, 0)).toBe(N * 3 / 4)
    expect(s.refusals).toEqual([expect.objectContaining({ code: 'CB_ERR_NO_ROUTE', total: N / 4 })])
    expect(s.reloads).toMatchObject({ applied: 0, refused: 1 })
    expect(s.store).toEqual({ backend: 'memory', connected: true })
  }, 60_000)
})
