/**
 * gateway.workers (issue 6, "Hot reload and lifecycle"): a primary and two workers, as a real process. Reloads
 * (POST /config, SIGHUP, a change of the file) reach every worker before the primary answers; an invalid config
 * changes nothing anywhere; a worker killed with SIGKILL is replaced (with the live config, even one that came
 * from POST /config) while the other keeps answering; SIGTERM drains every worker and the primary exits 0. The
 * primary's /status reports the workers and readiness.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'

interface WorkerStatus { pid: number, ready: boolean, config_hash: string }
interface Status { ready: boolean, config_hash: string, workers: number, worker_status: WorkerStatus[], reasons?: string[] }

let up: Upstream
let dir: string
const procs: CertboundProcess[] = []

beforeAll(async () => {
  await ensureDist()
  up = await startUpstream()
  dir = mkdtempSync(join(tmpdir(), 'certbound-workers-'))
}, 180_000)

afterAll(async () => {
  for (const p of procs) await p.kill()
  await up?.close()
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

async function get (url: string): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await request(url)
  const text = await r.body.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: r.statusCode, json }
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

/** A clustered certbound with `routes`; resolves once the primary says every worker is ready. */
async function boot (name: string, args: string[]): Promise<{ p: CertboundProcess, file: string, base: string, admin: string, config(routes: string[]): string }> {
  const port = await freePort()
  const adminPort = await freePort()
  const config = (routes: string[]): string => `_format_version: "3.0"
gateway:
  workers: 2
  admin_listen: 127.0.0.1:${adminPort}
  listen:
    - address: 127.0.0.1:${port}
  limits:
    drain_timeout: 3000
services:
  - name: echo
    url: ${up.url}
    routes:
${routes.map(r => `      - name: ${r}\n        paths: [/${r}]\n`).join('')}`
  const file = join(dir, `${name}.yml`)
  writeFileSync(file, config(['a']))
  const p = startCertbound(file, args)
  procs.push(p)
  const admin = `http://127.0.0.1:${adminPort}`
  await waitFor('two ready workers', async () => (await get(`${admin}/status/ready`)).status === 200 ? true : undefined, 20_000)
  return { p, file, base: `http://127.0.0.1:${port}`, admin, config }
}

const status = async (admin: string): Promise<Status> => (await get(`${admin}/status`)).json as unknown as Status

describe('gateway.workers: 2 (primary + workers, a real process)', () => {
  it('reloads reach every worker; a crashed worker is replaced with the live config; SIGTERM stops them all, exit 0', async () => {
    const { p, file, base, admin, config } = await boot('cluster', ['--no-watch'])
    const s0 = await status(admin)
    expect(s0).toMatchObject({ ready: true, workers: 2 })
    expect(s0.worker_status).toHaveLength(2)
    // /metrics on the primary aggregates the workers' registries (and answers: it used to wait forever)
    for (let i = 0; i < 4; i++) {
      const r = await request(`${base}/a/m${i}`)
      await r.body.dump()
      expect(r.statusCode).toBe(200)
    }
    const m = await request(`${admin}/metrics`, { headersTimeout: 5000, bodyTimeout: 5000 })
    expect(m.statusCode).toBe(200)
    const metrics = await m.body.text()
    const served = [...metrics.matchAll(/^certbound_http_requests_total\{route="a",status="200"\} (\d+)/gm)].map(x => Number(x[1]))
    expect(served.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4)
    for (const w of s0.worker_status) expect(w).toMatchObject({ ready: true, config_hash: s0.config_hash })
    expect(s0.worker_status.map(w => w.pid)).not.toContain(p.pid)

    // POST /config: the primary answers once both workers applied it
    const posted = await request(`${admin}/config`, { method: 'POST', body: config(['posted']), headers: { 'content-type': 'application/yaml' } })
    expect(posted.statusCode).toBe(200)
    const postedHash = ((await posted.body.json()) as Status).config_hash
    expect(postedHash).not.toBe(s0.config_hash)
    const s1 = await status(admin)
    expect(s1.worker_status.map(w => w.config_hash)).toEqual([postedHash, postedHash])
    for (let i = 0; i < 10; i++) expect((await get(`${base}/posted`)).status).toBe(200)
    expect((await get(`${base}/a`)).status).toBe(404)

    // an invalid config: 400 with `certbound validate`'s diagnostics, no worker changes
    const bad = await request(`${admin}/config`, { method: 'POST', body: config(['x']).replace('paths: [/x]', 'pahts: [/x]'), headers: { 'content-type': 'application/yaml' } })
    expect(bad.statusCode).toBe(400)
    expect(((await bad.body.json()) as { errors: string }).errors).toMatch(/cluster\.yml:\d+:\d+ {2}CB_CFG_UNKNOWN_FIELD {2}services\[0\]\.routes\[0\]\.pahts/)
    expect((await status(admin)).worker_status.map(w => w.config_hash)).toEqual([postedHash, postedHash])

    // kill -9 one worker: the other keeps answering, a new one starts with the live (POSTed) config
    const victim = s1.worker_status[0].pid
    const survivor = s1.worker_status[1].pid
    process.kill(victim, 'SIGKILL')
    await waitFor('the victim gone', () => alive(victim) ? undefined : true)
    for (let i = 0; i < 10; i++) expect((await get(`${base}/posted`)).status).toBe(200)
    const s2 = await waitFor('a replacement worker', async () => {
      const s = await status(admin)
      return s.ready && s.workers === 2 && !s.worker_status.some(w => w.pid === victim) ? s : undefined
    }, 20_000)
    expect(s2.worker_status.map(w => w.pid)).toContain(survivor)
    expect(s2.worker_status.map(w => w.config_hash)).toEqual([postedHash, postedHash])
    expect(p.logs.some(l => l.msg === 'worker exited; starting a new one' && l.worker === victim)).toBe(true)

    // SIGHUP: the primary re-reads the file and every worker applies it
    writeFileSync(file, config(['b']))
    p.proc.kill('SIGHUP')
    const s3 = await waitFor('the file config on both workers', async () => {
      const s = await status(admin)
      return s.config_hash !== postedHash && s.worker_status.every(w => w.config_hash === s.config_hash) ? s : undefined
    })
    expect(s3.worker_status).toHaveLength(2)
    expect((await get(`${base}/b`)).status).toBe(200)
    expect((await get(`${base}/posted`)).status).toBe(404)

    // SIGTERM: a request in flight on a worker completes, every worker exits, the primary exits 0
    const pids = s3.worker_status.map(w => w.pid)
    const seen = up.requests.length
    up.handler = (_req, res) => { setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('slow answer') }, 1000) }
    try {
      const inflight = request(`${base}/b/slow`).then(async r => ({ status: r.statusCode, body: await r.body.text() }))
      await waitFor('the request at the upstream', () => up.requests.length > seen ? true : undefined)
      p.proc.kill('SIGTERM')
      expect(await inflight).toEqual({ status: 200, body: 'slow answer' })
      expect(await p.exited).toBe(0)
    } finally {
      up.handler = undefined
    }
    await waitFor('every worker gone', () => pids.some(alive) ? undefined : true, 5000)
  }, 55_000)

  it('a change of the config file (watched by default) reaches every worker', async () => {
    const { p, file, base, admin, config } = await boot('watched', [])
    const before = (await status(admin)).config_hash
    writeFileSync(file, config(['a', 'c']))
    const s = await waitFor('the new config on both workers', async () => {
      const st = await status(admin)
      return st.config_hash !== before && st.worker_status.length === 2 && st.worker_status.every(w => w.config_hash === st.config_hash) ? st : undefined
    })
    expect(s.ready).toBe(true)
    expect((await get(`${base}/c`)).status).toBe(200)
    p.proc.kill('SIGINT')
    expect(await p.exited).toBe(0)
  }, 40_000)

  it('NODE_CLUSTER_SCHED_POLICY=rr is honoured: the primary hands new connections to the workers in turn', async () => {
    // the default (SCHED_NONE) leaves the spread to the kernel, which can give one worker every connection; with
    // round-robin, 20 connections opened one after another alternate strictly between the two workers
    const before = process.env.NODE_CLUSTER_SCHED_POLICY
    process.env.NODE_CLUSTER_SCHED_POLICY = 'rr'
    let booted: Awaited<ReturnType<typeof boot>>
    try { booted = await boot('round-robin', ['--no-watch']) } finally {
      if (before === undefined) delete process.env.NODE_CLUSTER_SCHED_POLICY
      else process.env.NODE_CLUSTER_SCHED_POLICY = before
    }
    const { p, base } = booted
    for (let i = 0; i < 20; i++) {
      const r = await request(`${base}/a`, { headers: { 'x-request-id': `rr-${i}` }, reset: true })
      await r.body.text()
      expect(r.statusCode).toBe(200)
    }
    const served = await waitFor('20 access lines', async () => {
      const lines = p.logs.filter(l => l.msg === 'request' && typeof l.req_id === 'string' && l.req_id.startsWith('rr-'))
      return lines.length === 20 ? lines : undefined
    })
    // in request order, each connection on the other worker than the one before (the kernel's spread of
    // SCHED_NONE alternates 19 times in a row with a chance of about 2^-19)
    const pids = Array.from({ length: 20 }, (_, i) => served.find(l => l.req_id === `rr-${i}`)!.pid as number)
    expect(new Set(pids).size).toBe(2)
    for (let i = 1; i < pids.length; i++) expect(pids[i], `connection ${i}`).not.toBe(pids[i - 1])
    p.proc.kill('SIGINT')
    expect(await p.exited).toBe(0)
  }, 40_000)
})
