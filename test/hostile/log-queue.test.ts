/**
 * Issue 12 (3): the log must not hide what matters. Against dist/'s real stdout destination in a child process
 * (a pipe read slowly or not at all), and the real multi-process gateway for SIGHUP sent to a worker:
 * - a warning or a lifecycle line reaches the reader at once, ahead of megabytes of queued access lines, and also
 *   while libuv's thread pool is busy;
 * - ordinary lines wait in a bounded buffer, dropped and counted beyond it (memory stays flat);
 * - the exit flush is bounded in time, and says how many lines it dropped;
 * - SIGHUP to a worker is logged with the primary's PID.
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ROOT, ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'

interface Run { out: string, code: number | null, ms: number, firstSeen: Map<string, { ms: number, offset: number }> }

/** Run `body` with `log` (dist's logger on stdout) in a child; `reader` controls how its stdout pipe is read. */
function run (body: string, reader: { pauseFirstMs?: number, pausePerChunkMs?: number, watch?: readonly string[] } = {}): Promise<Run> {
  const mod = (p: string): string => JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/observability', p)).href)
  const script = `import { createLogger, logDestination } from ${mod('logger.js')}\nconst log = createLogger()\nconst dest = logDestination(log)\n${body}`
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('logger script did not finish in 30 s')) }, 30_000)
    let out = ''
    const firstSeen = new Map<string, { ms: number, offset: number }>()
    p.stdout.setEncoding('utf8')
    if (reader.pauseFirstMs !== undefined) { p.stdout.pause(); setTimeout(() => p.stdout.resume(), reader.pauseFirstMs) }
    p.stdout.on('data', (c: string) => {
      for (const w of reader.watch ?? []) {
        const at = c.indexOf(w)
        if (!firstSeen.has(w) && at >= 0) firstSeen.set(w, { ms: performance.now() - t0, offset: out.length + at })
      }
      out += c
      if (reader.pausePerChunkMs !== undefined) { p.stdout.pause(); setTimeout(() => p.stdout.resume(), reader.pausePerChunkMs) }
    })
    p.on('close', (code) => { clearTimeout(timer); resolve({ out, code, ms: performance.now() - t0, firstSeen }) })
  })
}

const lines = (out: string): Array<Record<string, unknown>> => out.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)

describe('issue 12 (3): the stdout log', () => {
  beforeAll(async () => { await ensureDist() }, 180_000)

  it('a warning and a lifecycle line jump ahead of megabytes of queued access lines', async () => {
    // 6 MB of access-like lines queue up behind a reader that does not read for 1 s; then the two lines that matter
    const r = await run(`
      for (let i = 0; i < 40000; i++) log.info({ i, path: '/a/' + 'x'.repeat(100) }, 'request')
      log.error({ errors: 1 }, 'config reload refused; the running config is unchanged')
      log.info({ lifecycle: true }, 'config reloaded')
      setTimeout(() => process.exit(0), 3000)
    `, { pauseFirstMs: 1000, watch: ['reload refused', 'config reloaded'] })
    const refused = r.firstSeen.get('reload refused')
    const reloaded = r.firstSeen.get('config reloaded')
    expect(refused).toBeDefined()
    expect(reloaded).toBeDefined()
    // at most the pipe's contents and one block in flight come before them, not the 6 MB queued
    expect(refused!.offset).toBeLessThan(512 * 1024)
    expect(reloaded!.offset).toBeLessThan(512 * 1024)
    expect(r.out.length).toBeGreaterThan(5_000_000)
    expect(lines(r.out).filter(l => l.msg === 'request')).toHaveLength(40000) // nothing lost: it fit the 8 MiB buffer
  })

  it('a warning is written at once while every libuv thread-pool thread is busy', async () => {
    const r = await run(`
      const { pbkdf2 } = await import('node:crypto')
      const t0 = Date.now()
      for (let i = 0; i < 8; i++) pbkdf2('x', 'y', 1_000_000, 32, 'sha256', () => {})
      log.warn({ waited_ms: Date.now() - t0 }, 'urgent while the pool is busy')
      setTimeout(() => process.exit(0), 200)
    `, { watch: ['urgent while'] })
    const seen = r.firstSeen.get('urgent while')
    expect(seen).toBeDefined()
    // the pbkdf2 jobs take seconds; the line does not wait for a pool thread (before: 11.9 s late)
    expect(seen!.ms).toBeLessThan(r.ms - 500)
  })

  it('ordinary lines beyond access_log_buffer are dropped and counted, memory stays flat; warnings are kept', async () => {
    const r = await run(`
      dest.maxQueuedBytes = 256 * 1024
      const rss0 = process.memoryUsage().rss
      for (let i = 0; i < 100000; i++) log.info({ i, path: '/a/' + 'x'.repeat(100) }, 'request')
      log.warn({ grew_mb: Math.round((process.memoryUsage().rss - rss0) / 1048576), dropped: dest.dropped, queued: dest.queued }, 'after the burst')
      setTimeout(() => process.exit(0), 1500)
    `, { pauseFirstMs: 500 })
    const all = lines(r.out)
    const after = all.find(l => l.msg === 'after the burst')!
    expect(after).toBeDefined()
    expect(after.dropped as number).toBeGreaterThan(50_000)
    expect(after.queued as number).toBeLessThanOrEqual(256 * 1024)
    expect(after.grew_mb as number).toBeLessThan(40) // 15 MB of lines were offered
    const requests = all.filter(l => l.msg === 'request').length
    const drops = all.filter(l => typeof l.msg === 'string' && l.msg.startsWith('log lines dropped'))
    expect(drops.length).toBeGreaterThan(0)
    expect(requests + (drops.at(-1)!.dropped_total as number)).toBe(100000) // every line written or counted
  })

  it('the exit flush is bounded in time (a slow reader), and the last line says how many were dropped', async () => {
    // ~7 MB queued at exit, read at ~640 KB/s: unbounded, the exit would take > 10 s
    const r = await run(`
      for (let i = 0; i < 50000; i++) log.info({ i, path: '/a/' + 'x'.repeat(100) }, 'request')
      process.exit(0)
    `, { pausePerChunkMs: 100 })
    expect(r.code).toBe(0)
    expect(r.ms).toBeLessThan(8000)
    const all = lines(r.out)
    const last = all.at(-1)!
    expect(last.msg).toMatch(/^log lines dropped at exit/)
    expect(all.filter(l => l.msg === 'request').length + (last.dropped_total as number)).toBe(50000)
  })
})

describe('issue 12 (3): SIGHUP sent to a worker', () => {
  let pki: TestPki
  let gw: CertboundProcess
  beforeAll(async () => {
    await ensureDist()
    pki = await createTestPki()
    const file = join(pki.dir, 'gateway.yml')
    writeFileSync(file, `_format_version: "3.0"
gateway:
  workers: 1
  listen: [{ address: "127.0.0.1:${await freePort()}" }]
  admin_listen: 127.0.0.1:${await freePort()}
services: []
`)
    gw = startCertbound(file)
    await waitFor('the worker to start', () => gw.logs.find(l => l.msg === 'certbound started' && l.pid !== gw.pid), 30_000)
  }, 240_000)
  afterAll(async () => { await gw?.kill(); pki?.cleanup() })

  it('is logged at once with the primary\'s PID, instead of being ignored silently', async () => {
    const worker = gw.logs.find(l => l.msg === 'certbound started' && l.pid !== gw.pid)!.pid as number
    process.kill(worker, 'SIGHUP')
    const line = await waitFor('the worker\'s warning', () => gw.logs.find(l => l.signal === 'SIGHUP' && l.pid === worker), 5000)
    expect(line).toMatchObject({ level: 'warn', primary_pid: gw.pid })
    expect(line.msg).toContain(`pid ${gw.pid}`)
  })
})
