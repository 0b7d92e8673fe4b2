/**
 * SIGTERM/SIGINT during start-up are held, not fatal, and never lost (src/runtime/stop-signals.ts). Found by CI:
 * `npm start` stopped right after "certbound started" was killed by the signal (no drain, no last line), or,
 * with a remove-and-add of listeners, kept running with the signal lost. Each case runs in a child process,
 * since it signals itself.
 */
import { describe, it, expect, beforeAll } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ensureDist, ROOT } from '../helpers/process.js'

beforeAll(async () => { await ensureDist() }, 200_000)

const MODULE = pathToFileURL(join(ROOT, 'dist/src/runtime/stop-signals.js')).href

/** Runs `body` with `held` in scope; returns what it printed and how it ended. */
function child (body: string): { out: string, status: number | null, signal: NodeJS.Signals | null } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { holdStopSignals } from '${MODULE}'\nconst held = holdStopSignals()\n${body}`], { encoding: 'utf8', timeout: 10_000 })
  return { out: r.stdout + r.stderr, status: r.status, signal: r.signal }
}

/** Blocks the thread: a signal that comes meanwhile is caught by libuv but not yet dispatched to JavaScript. */
const BUSY = 'const until = Date.now() + 100; while (Date.now() < until) {}'

describe('stop signals while starting', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} before release: remembered, and stop() runs once release() is called`, () => {
      const r = child(`process.kill(process.pid, '${sig}')
await new Promise(r => setTimeout(r, 100))
console.log('still running')
held.release((s) => { console.log('stop', s); process.exit(0) })
setTimeout(() => { console.log('stop never ran'); process.exit(3) }, 2000)`)
      expect(r.signal).toBe(null)
      expect(r.out).toBe(`still running\nstop ${sig}\n`)
      expect(r.status).toBe(0)
    })
  }

  it('a signal caught but not yet dispatched when release() is called still reaches stop()', () => {
    const r = child(`process.kill(process.pid, 'SIGTERM')
${BUSY}
held.release((s) => { console.log('stop', s); process.exit(0) })
setTimeout(() => { console.log('signal lost'); process.exit(3) }, 2000)`)
    expect(r.out).toBe('stop SIGTERM\n')
    expect(r.status).toBe(0)
  })

  it('after release, each signal goes to stop(); none before means no call', () => {
    const r = child(`const seen = []
held.release((s) => { seen.push(s) })
await new Promise(r => setTimeout(r, 50))
console.log('calls before', seen.length)
process.kill(process.pid, 'SIGINT')
await new Promise(r => setTimeout(r, 100))
process.kill(process.pid, 'SIGTERM')
await new Promise(r => setTimeout(r, 100))
console.log(seen.join(' '))`)
    expect(r.out).toBe('calls before 0\nSIGINT SIGTERM\n')
    expect(r.status).toBe(0)
  })

  it('held listeners do not keep the process alive', () => {
    const r = child(`console.log('done')`)
    expect(r.out).toBe('done\n')
    expect(r.status).toBe(0)
  })
})
