import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'

const ROOT = join(import.meta.dirname, '..', '..')

function freePort (): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0)) })
  })
}

/** The shell blocks of the README's walkthrough, in order. */
function walkthrough (): string[] {
  const md = readFileSync(join(ROOT, 'README.md'), 'utf8')
  const start = md.indexOf('## Walkthrough')
  expect(start).toBeGreaterThan(0)
  const section = md.slice(start, md.indexOf('\n## ', start + 10) > 0 ? md.indexOf('\n## ', start + 10) : undefined)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map(m => m[1])
}

describe('the demo (npm start) and the README walkthrough, run as written', () => {
  let dir: string
  let gw: ChildProcess
  let port: number
  let adminPort: number
  let output = ''

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'pipe' })
    dir = mkdtempSync(join(tmpdir(), 'certbound-demo-'))
    port = await freePort()
    adminPort = await freePort()
    // the shipped gateway.yml, on free ports (the only change)
    const yml = readFileSync(join(ROOT, 'gateway.yml'), 'utf8').replaceAll('8443', String(port)).replaceAll('8001', String(adminPort))
    writeFileSync(join(dir, 'gateway.yml'), yml)
    gw = spawn(process.execPath, [join(ROOT, 'bin', 'certbound.js'), 'start', '-c', 'gateway.yml', '--init-certs'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    gw.stdout!.on('data', (c: Buffer) => { output += c.toString() })
    gw.stderr!.on('data', (c: Buffer) => { output += c.toString() })
    const deadline = Date.now() + 20_000
    // the curl hint is written once start() returned, just after 'certbound started': wait for both
    while (!output.includes('certbound started') || !output.includes('certbound demo is up')) {
      if (Date.now() > deadline || gw.exitCode !== null) throw new Error(`the demo did not start:\n${output}`)
      await new Promise(r => setTimeout(r, 100))
    }
  })

  afterAll(async () => {
    if (gw !== undefined && gw.exitCode === null) {
      gw.kill('SIGTERM')
      await new Promise(r => gw.once('exit', r))
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  it('wrote a dev PKI with private keys readable only by the owner', () => {
    for (const f of ['ca.crt', 'server.crt', 'client1.crt', 'client2.crt']) expect(existsSync(join(dir, 'certs', f))).toBe(true)
    for (const f of ['ca.key', 'server.key', 'client1.key', 'client2.key']) expect(statSync(join(dir, 'certs', f)).mode & 0o077).toBe(0)
  })

  it('runs the README commands: token for client1, 200 on its certificate, 401 invalid_token on client2', () => {
    const blocks = walkthrough()
    expect(blocks.length).toBeGreaterThanOrEqual(4)
    const script = [
      'set -e',
      blocks[0],
      'echo "== token ${#TOKEN}"',
      'echo "== call1"', blocks[1],
      'echo; echo "== call2"', blocks[2],
      'echo; echo "== secret"', blocks[3],
    ].join('\n').replaceAll('8443', String(port)).replaceAll('8001', String(adminPort))
    const out = execFileSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    const [, tokenPart, call1, call2, secret] = out.split(/^== /m)
    expect(Number(tokenPart.split(' ')[1])).toBeGreaterThan(100)
    const echo = JSON.parse(call1.slice(call1.indexOf('{'))) as { request: { headers: Record<string, string> }, credential: { client_id: string, cnf_x5t_s256: string } }
    expect(echo.request.headers['x-credential-client-id']).toBe('client1')
    expect(echo.request.headers['x-consumer-id']).toBe('client1')
    expect(echo.credential.cnf_x5t_s256).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(call2).toMatch(/^call2\nHTTP\/1\.1 401/)
    expect(call2).toMatch(/www-authenticate: Bearer realm="certbound", error="invalid_token"/i)
    const tok = JSON.parse(secret.slice(secret.indexOf('{'))) as Record<string, unknown>
    expect(tok.token_type).toBe('Bearer')
    expect(tok.expires_in).toBe(300)
  })

  it('the token is bound to client1: cnf.x5t#S256 equals the thumbprint computed by openssl', () => {
    const token = execFileSync('bash', ['-c', walkthrough()[0].replaceAll('8443', String(port)) + '\necho -n "$TOKEN"'], { cwd: dir, encoding: 'utf8' })
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { cnf: Record<string, string> }
    const thumb = execFileSync('bash', ['-c', 'openssl x509 -in certs/client1.crt -outform der | openssl dgst -sha256 -binary | base64 | tr "+/" "-_" | tr -d "="'], { cwd: dir, encoding: 'utf8' }).trim()
    expect(claims.cnf['x5t#S256']).toBe(thumb)
  })

  it('prints the three curl commands to try, and they work as printed', () => {
    const hint = output.slice(output.indexOf('certbound demo is up'))
    // the indented, non-comment lines; the token command spans two lines (a trailing backslash)
    const lines = hint.split('\n').filter(l => l.startsWith('  ') && !l.trimStart().startsWith('#')).map(l => l.slice(2))
    const [token, call, replay] = lines.join('\n').replace(/\\\n/g, '').split('\n')
    expect(token).toContain(`https://localhost:${port}/oauth2/token`)
    const run = (...cmds: string[]): string => execFileSync('bash', ['-c', ['set -e', ...cmds].join('\n')], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    expect(run(token, call)).toContain('"x-credential-client-id": "client1"')
    expect(run(token, replay)).toMatch(/^HTTP\/1\.1 401/m)
  })

  it('runs the README\'s DPoP commands: a key (0600), a DPoP-bound token, 200 with a proof, 401 on replay and as Bearer', () => {
    const cli = `node ${join(ROOT, 'bin', 'certbound.js')}`
    const blocks = walkthrough().slice(4).map(b => b.replaceAll('npx certbound', cli).replaceAll('8443', String(port)))
    expect(blocks.length).toBe(3)
    const out = execFileSync('bash', ['-c', ['set -e', blocks[0], 'echo "== token ${#DTOKEN}"', 'echo "== call"', blocks[1], 'echo; echo "== replay"', blocks[2]].join('\n')], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
    expect(statSync(join(dir, 'dpop.pem')).mode & 0o077).toBe(0)
    const [, tokenPart, call, replay] = out.split(/^== /m)
    expect(Number(tokenPart.split(' ')[1])).toBeGreaterThan(100)
    const echo = JSON.parse(call.slice(call.indexOf('{'))) as { request: { headers: Record<string, string> } }
    expect(echo.request.headers['x-credential-token-type']).toBe('DPoP')
    expect(echo.request.headers.dpop).toBeUndefined()
    expect(replay).toMatch(/^replay\n200\n/)
    expect(replay).toMatch(/www-authenticate: DPoP realm="certbound", error="invalid_dpop_proof".*algs="/i)
    expect(replay.trim().endsWith('401')).toBe(true)
  })

  it('prints the DPoP commands to try, and they work as printed', () => {
    const cli = `node ${join(ROOT, 'bin', 'certbound.js')}`
    const hint = output.slice(output.indexOf('certbound demo is up'))
    const lines = hint.split('\n').filter(l => l.startsWith('  ') && !l.trimStart().startsWith('#')).map(l => l.slice(2))
    const cmds = lines.join('\n').replace(/\\\n/g, '').split('\n').slice(3, 6).map(c => c.replaceAll('npx certbound', cli).replaceAll('dpop.pem', 'dpop-hint.pem'))
    expect(cmds[0]).toContain('--new-key')
    const got = execFileSync('bash', ['-c', ['set -e', ...cmds].join('\n')], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
    expect(got).toContain('"x-credential-token-type": "DPoP"')
  })

  it('answers on the admin listener', () => {
    const status = JSON.parse(execFileSync('curl', ['-s', `http://127.0.0.1:${adminPort}/status`], { encoding: 'utf8' })) as { ready: boolean }
    expect(status.ready).toBe(true)
  })

  it('stops on SIGTERM with exit code 0', async () => {
    gw.kill('SIGTERM')
    const code = await new Promise<number | null>(r => gw.once('exit', (c) => r(c)))
    expect(code).toBe(0)
  })
})
