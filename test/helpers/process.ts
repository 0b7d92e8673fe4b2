/**
 * certbound as users run it: `node bin/certbound.js start -c FILE`, a real process with real signals. dist/ is
 * built at most once at a time across parallel test files (a mkdir lock) and only when a source is newer than it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { mkdirSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const STAMP = join(ROOT, 'dist', '.build-stamp')
const LOCK = join(tmpdir(), `certbound-dist-lock-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}`)

function newestSource (dir: string): number {
  let newest = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

function mtime (p: string): number {
  try { return statSync(p).mtimeMs } catch { return 0 }
}

/** `tsc -p tsconfig.build.json` when src/ or plugins/ changed since the last build (bounded: 3 minutes). */
export async function ensureDist (): Promise<void> {
  const deadline = Date.now() + 180_000
  for (;;) {
    try { mkdirSync(LOCK); break } catch { /* another test file is building */ }
    // left behind by a run that was killed mid-build
    if (Date.now() - mtime(LOCK) > 200_000) { try { rmdirSync(LOCK) } catch { /* raced */ } continue }
    if (Date.now() > deadline) throw new Error(`ensureDist: ${LOCK} held for 3 minutes (remove it if no build runs)`)
    await new Promise(r => setTimeout(r, 200))
  }
  try {
    if (mtime(STAMP) > Math.max(newestSource(join(ROOT, 'src')), newestSource(join(ROOT, 'plugins')))) return
    await new Promise<void>((res, rej) => {
      execFile('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 170_000 }, (err, stdout, stderr) => {
        if (err !== null) rej(new Error(`tsc -p tsconfig.build.json failed:\n${stdout}${stderr}`))
        else res()
      })
    })
    writeFileSync(STAMP, new Date().toISOString())
  } finally {
    rmdirSync(LOCK)
  }
}

/** A TCP port free on 127.0.0.1 right now (for processes that cannot report a port 0 back). */
export function freePort (): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => res(port))
    })
  })
}

export interface CertboundProcess {
  readonly proc: ChildProcess
  readonly pid: number
  /** stdout JSON lines parsed so far (pino), and stderr text. */
  readonly logs: Array<Record<string, unknown>>
  stderr: string
  /** Resolves with the exit code (or the signal name) once the process is gone. */
  readonly exited: Promise<number | string>
  /** Kill -9 if still running (afterAll). */
  kill(): Promise<void>
}

/**
 * Spawn `node bin/certbound.js start -c FILE ...args`. `onLog` sees every stdout JSON line; `keepLogs: false`
 * keeps them out of `logs` (a long run).
 */
export function startCertbound (configFile: string, args: string[] = [], opts: { onLog?: (line: Record<string, unknown>) => void, keepLogs?: boolean } = {}): CertboundProcess {
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'certbound.js'), 'start', '-c', configFile, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: Array<Record<string, unknown>> = []
  let buf = ''
  proc.stdout!.setEncoding('utf8')
  proc.stdout!.on('data', (d: string) => {
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let parsed: Record<string, unknown>
      try { parsed = JSON.parse(line) as Record<string, unknown> } catch { continue /* not a log line */ }
      if (opts.keepLogs !== false) logs.push(parsed)
      opts.onLog?.(parsed)
    }
  })
  const p: CertboundProcess = {
    proc,
    pid: proc.pid!,
    logs,
    stderr: '',
    exited: new Promise(res => proc.once('exit', (code, signal) => res(code ?? signal ?? -1))),
    async kill () {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await p.exited
    },
  }
  proc.stderr!.setEncoding('utf8')
  proc.stderr!.on('data', (d: string) => { p.stderr += d })
  return p
}

/** Poll `fn` every 100 ms until it returns a value other than undefined, or throw after `ms`. */
export async function waitFor<T> (what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v !== undefined) return v
    } catch (e) { last = e }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`)
    await new Promise(r => setTimeout(r, 100))
  }
}
