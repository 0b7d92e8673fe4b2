/**
 * How certbound is launched (issue 20): `npm start`, the Dockerfile and the benchmark run the same command,
 * `sh bin/with-jemalloc.sh node --max-semi-space-size=8 --openssl-config=bin/openssl.cnf bin/certbound.js`.
 * - `--openssl-config=bin/openssl.cnf` makes OpenSSL send one TLS 1.3 session ticket per handshake instead of two
 *   (the second cost about a tenth of a new mTLS connection's CPU). Checked on the real process started with the
 *   flags `npm start` uses: one ticket, and it resumes again and again with the client certificate's identity.
 *   Without the flag (node's defaults) there are two, so the count is the flag's doing.
 * - `bin/with-jemalloc.sh` preloads jemalloc when it is installed (`npm test` installs libjemalloc2); the start
 *   line says which allocator the process runs on, and CERTBOUND_MALLOC=system keeps glibc's.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { createTestPki, type TestPki } from '../helpers/pki.js'
import { ensureDist, freePort, ROOT, waitFor } from '../helpers/process.js'

/** The node flags of a launch command: what stands between `node` and `bin/certbound.js`. */
function nodeFlags (command: string): string[] {
  const m = /(?:^|\s)node((?:\s+--?[\w-]+(?:=\S+)?)*)\s+bin\/certbound\.js/.exec(command)
  if (m === null) throw new Error(`no "node ... bin/certbound.js" in: ${command}`)
  return m[1].trim().split(/\s+/).filter(f => f !== '')
}

const startScript = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start
const entrypoint = (JSON.parse(/^ENTRYPOINT (.*)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1]) as string[]).join(' ')
const benchFlags = /^GW_NODE_FLAGS=\$\{GW_NODE_FLAGS-(.*)\}$/m.exec(readFileSync(join(ROOT, 'bench/lib.sh'), 'utf8'))![1]

const benchLauncher = /^GW_LAUNCHER=\$\{GW_LAUNCHER-(.*)\}$/m.exec(readFileSync(join(ROOT, 'bench/lib.sh'), 'utf8'))![1]

describe('the launch command', () => {
  it('is the same for npm start, the Dockerfile and the benchmark: through bin/with-jemalloc.sh, with bin/openssl.cnf', () => {
    const flags = nodeFlags(startScript)
    expect(flags).toContain('--openssl-config=bin/openssl.cnf')
    expect(nodeFlags(entrypoint)).toEqual(flags)
    expect(benchFlags.split(/\s+/).map(f => f.replace('$ROOT/', ''))).toEqual(flags)
    for (const launch of [startScript, entrypoint]) expect(launch).toContain('sh bin/with-jemalloc.sh node ')
    expect(benchLauncher).toBe('sh $ROOT/bin/with-jemalloc.sh')
  })
})

describe('bin/with-jemalloc.sh', () => {
  let pki2: TestPki
  beforeAll(async () => { await ensureDist(); pki2 = await createTestPki() }, 180_000)
  afterAll(() => { pki2?.cleanup() })

  /** The start line of certbound launched through the script with `env` added; the process is stopped after it. */
  async function startLine (env: Record<string, string>): Promise<Record<string, unknown> & { environ: string[] }> {
    const port = await freePort()
    const file = join(pki2.dir, 'alloc.yml')
    writeFileSync(file, `_format_version: "3.0"\ngateway:\n  listen:\n    - address: 127.0.0.1:${port}\nservices: []\n`)
    const child = spawn('sh', ['bin/with-jemalloc.sh', process.execPath, 'bin/certbound.js', 'start', '-c', file], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout!.on('data', (c: Buffer) => { out += c.toString() })
    child.stderr!.on('data', (c: Buffer) => { out += c.toString() })
    try {
      const line = await waitFor('the start line', () => out.split('\n').find(l => l.includes('"certbound started"')), 30_000)
      // the script execs node: the child's pid is node's, and its environment is what the script set
      const environ = readFileSync(`/proc/${child.pid!}/environ`, 'latin1').split('\0')
      return { ...(JSON.parse(line) as Record<string, unknown>), environ }
    } finally {
      const gone = new Promise(r => child.once('exit', r))
      child.kill('SIGTERM')
      await gone
    }
  }

  it('runs node on jemalloc when libjemalloc2 is installed (the start line says so)', async () => {
    const started = await startLine({ CERTBOUND_MALLOC: '', LD_PRELOAD: '', MALLOC_CONF: '' })
    expect(started.allocator).toBe('jemalloc')
    // freed pages returned after 1 s: the RSS bound of the soak
    expect(started.environ).toContain('MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0')
  }, 60_000)

  it('leaves a MALLOC_CONF of the operator\'s as it is', async () => {
    const started = await startLine({ CERTBOUND_MALLOC: '', LD_PRELOAD: '', MALLOC_CONF: 'dirty_decay_ms:5000' })
    expect(started.allocator).toBe('jemalloc')
    expect(started.environ).toContain('MALLOC_CONF=dirty_decay_ms:5000')
  }, 60_000)

  it('keeps glibc\'s allocator with CERTBOUND_MALLOC=system', async () => {
    expect((await startLine({ CERTBOUND_MALLOC: 'system', LD_PRELOAD: '' })).allocator).toBe('system')
  }, 60_000)
})

interface Answer { tickets: number, reused: boolean, status: number | undefined, body: string, session: Buffer | undefined }

let pki: TestPki

/** One request on a new connection with client1's certificate; counts the tickets the server sends. */
function call (port: number, session?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let tickets = 0
    let last: Buffer | undefined
    let data = ''
    let reused = false
    const s: TLSSocket = connect({
      host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.certPem, cert: pki.client1.certPem, key: pki.client1.keyPem, session,
    }, () => {
      reused = s.isSessionReused()
      s.write('GET /echo HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
    })
    s.on('session', (t: Buffer) => { tickets++; last = t })
    s.setEncoding('utf8')
    s.on('data', (c: string) => { data += c })
    s.on('error', reject)
    s.setTimeout(5000, () => s.destroy(new Error('timeout')))
    s.on('close', () => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]
      resolve({ tickets, reused, status: status === undefined ? undefined : Number(status), body: data.slice(data.indexOf('\r\n\r\n') + 4), session: last })
    })
  })
}

describe.each([
  { launch: 'npm start\'s flags', flags: () => nodeFlags(startScript), tickets: 1 },
  { launch: 'node\'s defaults (no flags)', flags: () => [], tickets: 2 },
])('TLS 1.3 session tickets, certbound started with $launch', ({ flags, tickets }) => {
  let proc: ChildProcess | undefined
  let port: number

  beforeAll(async () => {
    await ensureDist()
    pki ??= await createTestPki()
    port = await freePort()
    const file = join(pki.dir, `tickets-${tickets}.yml`)
    writeFileSync(file, `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:${port}
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: require
services:
  - name: echo
    url: http://127.0.0.1:9
    routes:
      - name: echo
        paths: [/echo]
        plugins:
          - name: request-termination
            config: { status_code: 200, echo: true }
`)
    // cwd: the package root, as npm runs its scripts (the flag's path is relative to it)
    proc = spawn(process.execPath, [...flags(), join(ROOT, 'bin/certbound.js'), 'start', '-c', file], { cwd: ROOT, stdio: 'ignore' })
    await waitFor('the listener', async () => (await call(port).then(a => a.status, () => undefined)) === 200 ? true : undefined)
  }, 180_000)
  afterAll(async () => {
    if (proc !== undefined && proc.exitCode === null) {
      const gone = new Promise(r => proc!.once('exit', r))
      proc.kill('SIGKILL')
      await gone
    }
  })

  it(`sends ${tickets} ticket(s) after a full handshake; a resumed connection keeps the certificate's identity`, async () => {
    const first = await call(port)
    expect(first.status).toBe(200)
    expect(first.reused).toBe(false)
    expect(first.tickets).toBe(tickets)
    const again = await call(port, first.session)
    expect(again.reused).toBe(true)
    expect(again.status).toBe(200)
    const echo = JSON.parse(again.body) as { tls: { resumed: boolean, client_certificate: { subject: string } | null } }
    expect(echo.tls.resumed).toBe(true)
    expect(echo.tls.client_certificate?.subject).toContain('CN=client1')
    // the ticket stays good for further resumptions (OpenSSL sends no new one on a resumed connection): a client
    // that reconnects one connection at a time needs only the one
    expect(again.tickets).toBe(0)
    const third = await call(port, first.session)
    expect(third.reused).toBe(true)
    expect(third.status).toBe(200)
  })
})

afterAll(() => { pki?.cleanup() })
