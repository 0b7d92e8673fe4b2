/**
 * A real redis-server for tests: its own process on a free loopback port, no persistence (`--save '' --appendonly
 * no`), never the system service. SIGSTOP/SIGCONT/SIGKILL and restart on the same port drive fault tests.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './process.js'

export interface TestRedis {
  readonly port: number
  readonly url: string
  /** With `tls`: the TLS port (`rediss://localhost:<tlsPort>`); the plain port stays for the test's own commands. */
  readonly tlsPort: number | undefined
  /** SIGSTOP: the socket stays open, nothing answers (a hung Redis). */
  pause(): void
  resume(): void
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>
  /** Start again on the same port (empty: no persistence). */
  restart(): Promise<void>
  /** One command over a raw RESP connection (for assertions on what Redis holds). */
  command(...args: string[]): Promise<string>
  stop(): Promise<void>
}

export async function startRedis (opts: { args?: string[], tls?: { cert: string, key: string, ca: string } } = {}): Promise<TestRedis> {
  const port = await freePort()
  const tlsPort = opts.tls === undefined ? undefined : await freePort()
  const tlsArgs = opts.tls === undefined ? [] : ['--tls-port', String(tlsPort), '--tls-cert-file', opts.tls.cert, '--tls-key-file', opts.tls.key, '--tls-ca-cert-file', opts.tls.ca, '--tls-auth-clients', 'no']
  const dir = mkdtempSync(join(tmpdir(), 'cb-redis-'))
  let proc: ChildProcess | undefined
  const boot = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', ...tlsArgs, ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] })
    proc = p
    let out = ''
    p.stdout!.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    const deadline = Date.now() + 10_000
    for (;;) {
      if (p.exitCode !== null) throw new Error(`redis-server exited: ${out}`)
      if (await ping(port)) return
      if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${port}: ${out}`)
      await new Promise(r => setTimeout(r, 50))
    }
  }
  await boot()
  const kill = async (): Promise<void> => {
    const p = proc
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise(r => p.once('exit', r))
    p.kill('SIGCONT')
    p.kill('SIGKILL')
    await exited
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    tlsPort,
    pause: () => { proc?.kill('SIGSTOP') },
    resume: () => { proc?.kill('SIGCONT') },
    kill,
    restart: async () => { await kill(); await boot() },
    command: (...args) => rawCommand(port, args),
    stop: async () => { await kill(); rmSync(dir, { recursive: true, force: true }) },
  }
}

function ping (port: number): Promise<boolean> {
  // any answer (PONG, or NOAUTH with requirepass) means the server is up
  return rawCommand(port, ['PING'], 500).then(() => true, () => false)
}

/** RESP over a fresh socket; the reply rendered as text (arrays joined with newlines). */
function rawCommand (port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return new Promise((res, rej) => {
    const s = createConnection({ port, host: '127.0.0.1' })
    let buf = ''
    const t = setTimeout(() => { s.destroy(); rej(new Error('redis command timed out')) }, timeoutMs)
    s.on('error', (e) => { clearTimeout(t); rej(e) })
    s.on('connect', () => { s.write(`*${args.length}\r\n` + args.map(a => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')) })
    s.on('data', (d) => {
      buf += d.toString()
      const r = parseReply(buf)
      if (r !== undefined) { clearTimeout(t); s.end(); res(r) }
    })
  })
}

function parseReply (buf: string): string | undefined {
  let i = 0
  const line = (): string | undefined => {
    const e = buf.indexOf('\r\n', i)
    if (e < 0) return undefined
    const l = buf.slice(i, e)
    i = e + 2
    return l
  }
  const one = (): string | undefined => {
    const l = line()
    if (l === undefined) return undefined
    const t = l[0]; const rest = l.slice(1)
    if (t === '+' || t === ':') return rest
    if (t === '-') return 'ERR ' + rest
    if (t === '$') {
      if (rest === '-1') return '(nil)'
      // ASCII replies only (what the tests read): length in bytes = length in chars
      const n = Number(rest)
      if (buf.length < i + n + 2) return undefined
      const v = buf.slice(i, i + n)
      i += n + 2
      return v
    }
    if (t === '*') {
      const n = Number(rest); const out: string[] = []
      for (let k = 0; k < n; k++) { const v = one(); if (v === undefined) return undefined; out.push(v) }
      return out.join('\n')
    }
    return l
  }
  return one()
}
