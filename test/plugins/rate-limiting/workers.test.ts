/**
 * policy local with gateway.workers: 2 — one node, one count: the workers share the primary's memory store, so
 * requests spread over both workers (new connections, round-robin) never get more than the limit through. A real
 * certbound process on the system clock (a separate process cannot take a ManualClock): the limit is per hour and
 * the test waits out the last seconds of an hour rather than straddle two windows.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startUpstream, type Upstream } from '../../helpers/upstream.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../../helpers/process.js'

let up: Upstream
let dir: string
let proc: CertboundProcess | undefined

beforeAll(async () => {
  await ensureDist()
  up = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'certbound-rl-workers-'))
}, 180_000)

afterAll(async () => {
  await proc?.kill()
  await up?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

/** One request on a new connection (so the primary hands it to the next worker). */
function once (url: string): Promise<{ status: number, remaining: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 10_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, remaining: res.headers['ratelimit-remaining'] as string | undefined }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
  })
}

describe('policy local, gateway.workers: 2: the workers share one count', () => {
  it('hour: 5 → 12 requests over new connections, spread over both workers: exactly 5 pass; a burst of 300: exactly 50 of hour: 50', async () => {
    const port = await freePort()
    const admin = await freePort()
    const file = join(dir, 'gateway.yml')
    writeFileSync(file, `_format_version: "3.0"
gateway:
  workers: 2
  admin_listen: 127.0.0.1:${admin}
  listen: [{ address: 127.0.0.1:${port} }]
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: limited
        paths: [/]
        plugins:
          - name: rate-limiting
            config: { hour: 5, limit_by: ip, policy: local }
      - name: burst
        paths: [/burst]
        plugins:
          - name: rate-limiting
            config: { hour: 50, limit_by: ip, policy: local }
`)
    proc = startCertbound(file, ['--no-watch'])
    await waitFor('two ready workers', async () => {
      try { return (await once(`http://127.0.0.1:${admin}/status/ready`)).status === 200 ? true : undefined } catch { return undefined }
    }, 30_000)
    // never straddle two hourly windows (bounded: at most 20 s)
    const left = 3_600_000 - (Date.now() % 3_600_000)
    if (left < 20_000) await new Promise(r => setTimeout(r, left + 100))

    const results: Array<{ status: number, remaining: string | undefined }> = []
    for (let i = 0; i < 12; i++) results.push(await once(`http://127.0.0.1:${port}/`))
    expect(results.map(r => r.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 429])
    expect(results.slice(0, 5).map(r => r.remaining)).toEqual(['4', '3', '2', '1', '0'])

    // both workers answered (their access lines carry their pids)
    const pids = await waitFor('access lines of 12 requests', () => {
      const lines = proc!.logs.filter(l => l.route === 'limited')
      return lines.length >= 12 ? new Set(lines.map(l => l.pid)) : undefined
    }, 10_000)
    expect(pids.size).toBe(2)

    // 300 concurrent requests on 300 connections, both workers counting at once: exactly 50 pass
    const burst = await Promise.all(Array.from({ length: 300 }, async () => (await once(`http://127.0.0.1:${port}/burst`)).status))
    expect({ ok: burst.filter(s => s === 200).length, refused: burst.filter(s => s === 429).length }).toEqual({ ok: 50, refused: 250 })
  }, 120_000)
})
