/**
 * `npm start` stops with its signals (issue 16): SIGTERM to npm (what a process manager or `kill` sends) and
 * SIGINT (Ctrl-C) leave no process behind and free the ports. npm passes the signal to its script's shell; the
 * script execs node, so the gateway itself receives it (a shell running `a && b` would not pass it on).
 */
import { describe, it, expect, beforeAll } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ensureDist, freePort, ROOT } from '../helpers/process.js'

beforeAll(async () => { await ensureDist() }, 200_000)

function portOpen (port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port }, () => { s.destroy(); res(true) })
    s.on('error', () => res(false))
  })
}

function groupAlive (pgid: number): boolean {
  try { process.kill(-pgid, 0); return true } catch { return false }
}

describe('npm start, stopped by a signal to npm', () => {
  // `immediate`: the signal goes the moment the gateway logs that it started, while `npm start` still prints the
  // demo's instructions (a stop there was once a bare kill: src/runtime/stop-signals.ts)
  for (const { signal, immediate } of [{ signal: 'SIGTERM', immediate: false }, { signal: 'SIGINT', immediate: false }, { signal: 'SIGTERM', immediate: true }] as const) {
    it(`${signal} to npm${immediate ? ' right after start' : ''}: a clean stop, no process left in its group, ports freed`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'certbound-npm-start-'))
      try {
        const port = await freePort()
        const adminPort = await freePort()
        const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
        // the real start script; its build step is the one dist/ already had (ensureDist)
        writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'npm-start-test', private: true, type: 'module', scripts: { build: 'true', start: pkg.scripts.start } }))
        symlinkSync(join(ROOT, 'bin'), join(dir, 'bin'))
        writeFileSync(join(dir, 'gateway.yml'), readFileSync(join(ROOT, 'gateway.yml'), 'utf8').replaceAll('8443', String(port)).replaceAll('8001', String(adminPort)))
        const npm = spawn('npm', ['start'], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
        let output = ''
        npm.stdout!.on('data', (c: Buffer) => { output += c.toString() })
        npm.stderr!.on('data', (c: Buffer) => { output += c.toString() })
        const exited = new Promise<number | null>(r => npm.once('exit', code => r(code)))
        // npm may exit before the gateway it signalled has written its last line: the pipes close after both
        const drained = Promise.all([npm.stdout!, npm.stderr!].map(s => new Promise(r => s.once('close', r))))
        const deadline = Date.now() + 60_000
        while (!output.includes('certbound started')) {
          if (Date.now() > deadline || npm.exitCode !== null) { if (npm.pid !== undefined && groupAlive(npm.pid)) process.kill(-npm.pid, 'SIGKILL'); throw new Error(`npm start did not start:\n${output}`) }
          await new Promise(r => setTimeout(r, immediate ? 1 : 100))
        }
        if (!immediate) expect(await portOpen(port)).toBe(true)
        npm.kill(signal) // npm only, as `kill -TERM <npm pid>` does
        await exited
        const gone = Date.now() + 15_000
        while (groupAlive(npm.pid!) && Date.now() < gone) await new Promise(r => setTimeout(r, 100))
        const leftover = groupAlive(npm.pid!)
        if (leftover) process.kill(-npm.pid!, 'SIGKILL')
        expect(leftover, output).toBe(false)
        expect(await portOpen(port)).toBe(false)
        expect(await portOpen(adminPort)).toBe(false)
        await Promise.race([drained, new Promise(r => setTimeout(r, 5000))])
        expect(output).toContain('certbound stopped')
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }, 120_000)
  }
})
