/**
 * Faults under load (issue 6): `npm run soak` (SOAK_SECONDS=180 by default; SOAK_SECONDS=20 for a quick run).
 *
 * certbound runs as users run it (`node bin/certbound.js start -c FILE`, its own process) in front of the full
 * chain: mtls-auth (the test CA, the client certificate sent upstream as X-Client-Cert) + openid-connect in strict
 * proof-of-possession mode against a real oidc-provider (test/helpers/idp.ts). 64 keep-alive connections with client
 * certificates load it: 48 with their own certificate-bound tokens, 8 replaying client1's token from client2's
 * certificate (with spoofed X-Client-Cert and X-Credential-* headers), 4 without a token, 4 with forged tokens
 * (alg none; ES256 by a key the IdP never published). Meanwhile the IdP is stopped and restarted twice, its JWKS
 * rotates twice (new tokens are minted with the new key and must keep working), the upstream is killed and
 * restarted, then stalls past read_timeout, and the config is reloaded every 3 s, valid and invalid in turn, through
 * POST /config, the watched file and SIGHUP.
 *
 * The upstream verifies every request it receives on its own: the token's ES256 signature with jose against the
 * IdP's published keys, its expiry, its cnf."x5t#S256" against the SHA-256 of the certificate the gateway sent in
 * X-Client-Cert (which must chain to the test CA), and the X-Credential-* headers against the token. Any request it
 * cannot verify is a violation; so is a 2xx answer to an attack connection. The run fails on a violation, on a
 * gateway crash (the process exits, or prints an unhandled error), on a reload answered other than expected, or on
 * an exit code other than 0 after SIGTERM. It prints a summary (requests served, statuses by phase, 5xx by cause
 * from the gateway's access log, RSS before and after) and writes it to bench/results/<stamp>-faults/.
 *
 * Loopback only. Every loop is bounded in time (SOAK_SECONDS) and in count.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { X509Certificate, createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, Client, request } from 'undici'
import { SignJWT, createLocalJWKSet, generateKeyPair, jwtVerify, type JWK, type JWTPayload } from 'jose'
import { createTestPki, type TestCert, type TestPki } from '../test/helpers/pki.js'
import { startIdp, type Idp } from '../test/helpers/idp.js'
import { ensureDist, freePort, ROOT, startCertbound, waitFor, type CertboundProcess } from '../test/helpers/process.js'

const SOAK_SECONDS = Math.min(Math.max(Number(process.env.SOAK_SECONDS ?? 180) || 180, 10), 3600)
const CONNECTIONS = 64
const RELOAD_EVERY_MS = 3000
const TOKEN_REFRESH_MS = 10_000
const READ_TIMEOUT_MS = 1000
const STALL_MS = 1500
const MAX_REQUESTS_PER_CONNECTION = 10_000_000
const MAX_CHAOS_TICKS = SOAK_SECONDS * 20

type Role = 'good' | 'stolen' | 'none' | 'forged'

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))
const inc = (m: Map<string, number>, k: string, by = 1): void => { m.set(k, (m.get(k) ?? 0) + by) }

function roleOf (i: number): Role {
  if (i % 8 === 7) return 'stolen'
  if (i % 16 === 6) return 'none'
  if (i % 16 === 14) return 'forged'
  return 'good'
}

function rssMb (pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? 0 : Math.round(Number(m[1]) / 102.4) / 10
  } catch { return 0 }
}

/** CPU seconds (user + system) the process has used, from /proc. */
function cpuSeconds (pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) / 100
  } catch { return 0 }
}

function thumbprint (der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url')
}

/**
 * The upstream: an HTTP server that verifies, by itself, that every request it gets carries a valid binding. It can
 * be killed (listener and every connection gone) and restarted on the same port, and made to stall.
 */
class VerifyingUpstream {
  port = 0
  stalling = false
  received = 0
  verified = 0
  readonly violations = new Map<string, number>()
  private readonly server = createServer((req, res) => this.handle(req, res))
  private readonly sockets = new Set<Socket>()
  private readonly keys = new Map<string, JWK>()
  private jwks = createLocalJWKSet({ keys: [] })
  /** Tokens whose signature verified already (the signature never changes; every other check runs per request). */
  private readonly signatureOk = new Map<string, JWTPayload>()

  constructor (private readonly ca: X509Certificate, private readonly issuer: string) {
    this.server.on('connection', (s: Socket) => { this.sockets.add(s); s.once('close', () => this.sockets.delete(s)) })
  }

  async start (port = this.port): Promise<void> {
    await new Promise<void>((res, rej) => {
      this.server.once('error', rej)
      this.server.listen(port, '127.0.0.1', () => { this.server.off('error', rej); res() })
    })
    const a = this.server.address()
    this.port = typeof a === 'object' && a !== null ? a.port : port
  }

  async stop (): Promise<void> {
    const closed = new Promise<void>(r => this.server.close(() => r()))
    for (const s of this.sockets) s.destroy()
    await closed
  }

  /** Learn the IdP's published keys (called while it is up: at start and after every rotation). */
  async learnKeys (jwksUri: string, ca: string): Promise<void> {
    const agent = new Agent({ connect: { ca } })
    try {
      const r = await request(jwksUri, { dispatcher: agent })
      const body = await r.body.json() as { keys: JWK[] }
      for (const k of body.keys) if (k.kid !== undefined) this.keys.set(k.kid, k)
      this.jwks = createLocalJWKSet({ keys: [...this.keys.values()] })
    } finally {
      await agent.close()
    }
  }

  private violation (why: string): void { inc(this.violations, why) }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    req.resume()
    req.on('end', () => {
      this.received++
      void this.check(req).then((why) => {
        if (why === undefined) this.verified++
        else this.violation(why)
        const answer = (): void => {
          if (res.destroyed) return
          const body = JSON.stringify({ ok: why === undefined })
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
          res.end(body)
        }
        if (this.stalling) setTimeout(answer, STALL_MS)
        else answer()
      })
    })
  }

  /** undefined when the request carries a valid binding; otherwise why not. */
  private async check (req: IncomingMessage): Promise<string | undefined> {
    if (!(req.url ?? '').startsWith('/good/')) return `an attack request reached the upstream (${(req.url ?? '').split('/')[1]})`
    const auth = req.headers.authorization
    if (auth === undefined || !auth.startsWith('Bearer ')) return 'no bearer token'
    const token = auth.slice(7)
    let payload = this.signatureOk.get(token)
    if (payload === undefined) {
      try {
        payload = (await jwtVerify(token, this.jwks, { issuer: this.issuer, algorithms: ['ES256'], clockTolerance: 30 })).payload
      } catch (e) {
        return `the token does not verify (${(e as { code?: string }).code ?? (e as Error).message})`
      }
      if (this.signatureOk.size > 10_000) this.signatureOk.clear()
      this.signatureOk.set(token, payload)
    }
    if (typeof payload.exp !== 'number' || payload.exp * 1000 + 30_000 < Date.now()) return 'the token is expired'
    const cnf = (payload.cnf as Record<string, unknown> | undefined)?.['x5t#S256']
    if (typeof cnf !== 'string') return 'the token is not certificate-bound'
    const header = req.headers['x-client-cert']
    if (typeof header !== 'string') return 'no X-Client-Cert from the gateway'
    let cert: X509Certificate
    try { cert = new X509Certificate(decodeURIComponent(header)) } catch { return 'X-Client-Cert is not a certificate' }
    if (!cert.checkIssued(this.ca) || !cert.verify(this.ca.publicKey)) return 'the client certificate is not issued by the CA'
    if (thumbprint(cert.raw) !== cnf) return 'cnf."x5t#S256" does not match the client certificate'
    if (req.headers['x-credential-client-id'] !== payload.client_id || req.headers['x-credential-jti'] !== payload.jti) return 'X-Credential-* do not match the token'
    return undefined
  }
}

let pki: TestPki
let idp: Idp
let up: VerifyingUpstream
let gw: CertboundProcess | undefined
let port: number
let adminPort: number
let file: string
let gwExit: number | string | undefined

const config = (gen: number, invalid: boolean): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:${adminPort}
  trusted_certificates: ${pki.ca.certFile}
  listen:
    - address: 127.0.0.1:${port}
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: request
  limits:
    drain_timeout: 3000
services:
  - name: verifying
    url: http://127.0.0.1:${up.port}
    connect_timeout: 1000
    read_timeout: ${READ_TIMEOUT_MS}
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
              upstream_cert_header: X-Client-Cert
          - name: openid-connect
            config:
              issuer: ${idp.issuer}
              proof_of_possession_mtls: strict
              rediscovery_lifetime: 2
      - name: generation-${gen}
        paths: [/generation-${gen}]${invalid ? '\n        strip_paht: true' : ''}
`

beforeAll(async () => {
  await ensureDist()
  pki = await createTestPki()
  idp = await startIdp({
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    clientCaPem: pki.ca.certPem,
    clients: [
      { client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org' },
      { client_id: 'client2', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client2,O=Example Org' },
    ],
  })
  up = new VerifyingUpstream(pki.ca.x509, idp.issuer)
  await up.start(0)
  await up.learnKeys(idp.jwksUri, pki.ca.certPem)
  port = await freePort()
  adminPort = await freePort()
  file = join(pki.dir, 'soak.yml')
  writeFileSync(file, config(0, false))
}, 240_000)

afterAll(async () => {
  await gw?.kill()
  await up?.stop().catch(() => undefined)
  await idp?.close()
  pki?.cleanup()
})

describe(`faults under load: ${CONNECTIONS} connections, full chain, ${SOAK_SECONDS} s`, () => {
  it('no request passes without verification, no crash, exit 0', async () => {
    // ---- what the gateway says about every request (its access log) ----
    const gwStatus = new Map<string, number>()
    const gw5xx = new Map<string, number>()
    const gwErrors = new Map<string, number>()
    let applied = 0
    let refused = 0
    gw = startCertbound(file, [], {
      keepLogs: false,
      onLog (l) {
        if (l.msg === 'request') {
          const role = String(l.path ?? '').split('/')[2] ?? '?'
          inc(gwStatus, `${role} ${String(l.status)}`)
          if (Number(l.status) >= 500) inc(gw5xx, `${String(l.status)} ${String(l.err ?? '(upstream answered)')}`)
        } else if (l.msg === 'config reloaded') applied++
        else if (l.msg === 'config reload refused; the running config is unchanged') refused++
        else if (l.level === 'error' || l.level === 'fatal') inc(gwErrors, String(l.msg))
      },
    })
    gw.proc.once('exit', (code, signal) => { gwExit = code ?? signal ?? -1 })
    await waitFor('certbound ready', async () => (await request(`http://127.0.0.1:${adminPort}/status/ready`)).statusCode === 200 ? true : undefined, 30_000)
    const pid = gw.pid
    const rssStart = rssMb(pid)
    const cpuStart = cpuSeconds(pid)

    // ---- tokens: certificate-bound, minted at the IdP while it is up ----
    const certs: Record<'client1' | 'client2', TestCert> = { client1: pki.client1, client2: pki.client2 }
    const tokens: Record<'client1' | 'client2', string> = { client1: '', client2: '' }
    const mint = async (): Promise<void> => {
      for (const id of ['client1', 'client2'] as const) {
        tokens[id] = (await idp.token({ clientId: id, certPem: certs[id].certPem, keyPem: certs[id].keyPem })).access_token
      }
    }
    await mint()
    const rogue = await generateKeyPair('ES256')
    const forge = async (alg: 'none' | 'ES256', kid: string): Promise<string> => {
      const claims = { iss: idp.issuer, client_id: 'client1', sub: 'client1', exp: Math.floor(Date.now() / 1000) + 300, cnf: { 'x5t#S256': thumbprint(pki.client1.x509.raw) } }
      if (alg === 'ES256') return await new SignJWT(claims).setProtectedHeader({ alg, typ: 'at+jwt', kid }).sign(rogue.privateKey)
      const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
      return `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims)}.`
    }
    const forged = [await forge('none', idp.currentKid), await forge('ES256', idp.currentKid)]
    const spoofedCert = encodeURIComponent(pki.client1.certPem)

    // ---- phases: what is being done to the gateway's surroundings ----
    const t0 = Date.now()
    const end = t0 + SOAK_SECONDS * 1000
    const D = SOAK_SECONDS * 1000
    let phase = 'steady'
    const phases: string[] = ['steady']
    const events: string[] = []
    const rotate = async (): Promise<void> => { await idp.rotateKeys(); await up.learnKeys(idp.jwksUri, pki.ca.certPem); await mint() }
    const plan: Array<{ at: number, phase: string, run(): Promise<void> }> = [
      { at: 0.12, phase: 'idp down', run: () => idp.stop() },
      { at: 0.27, phase: 'idp back', run: async () => { await idp.start(); await mint() } },
      { at: 0.35, phase: 'jwks rotated', run: rotate },
      { at: 0.44, phase: 'upstream killed', run: () => up.stop() },
      { at: 0.53, phase: 'upstream back', run: () => up.start() },
      { at: 0.60, phase: 'upstream stalls', run: async () => { up.stalling = true } },
      { at: 0.68, phase: 'upstream answers', run: async () => { up.stalling = false } },
      { at: 0.74, phase: 'jwks rotated (2)', run: rotate },
      { at: 0.80, phase: 'idp down (2)', run: () => idp.stop() },
      { at: 0.90, phase: 'idp back (2)', run: async () => { await idp.start(); await mint() } },
    ]

    // ---- load: 64 keep-alive connections with client certificates ----
    const byPhase = new Map<string, Map<string, number>>()
    const clientStatus = (role: Role, status: string): void => {
      let m = byPhase.get(phase)
      if (m === undefined) { m = new Map(); byPhase.set(phase, m) }
      inc(m, `${role} ${status}`)
    }
    let served = 0
    let attackPassed = 0
    /** Per second of the run: [responses, good 200s]. */
    const perSecond = Array.from({ length: SOAK_SECONDS + 1 }, () => [0, 0])
    const drive = async (i: number): Promise<void> => {
      const role = roleOf(i)
      const own = role === 'good' ? (i % 2 === 0 ? 'client1' : 'client2') : (role === 'stolen' ? 'client2' : 'client1')
      const client = new Client(`https://127.0.0.1:${port}`, {
        connect: { ca: pki.ca.certPem, cert: certs[own].certPem, key: certs[own].keyPem, servername: 'localhost' },
        pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000, keepAliveTimeout: 60_000,
      })
      try {
        for (let n = 0; n < MAX_REQUESTS_PER_CONNECTION && Date.now() < end; n++) {
          const headers: Record<string, string> = {}
          if (role === 'good') headers.authorization = `Bearer ${tokens[own]}`
          if (role === 'stolen') Object.assign(headers, { authorization: `Bearer ${tokens.client1}`, 'x-client-cert': spoofedCert, 'x-credential-client-id': 'client1' })
          if (role === 'forged') headers.authorization = `Bearer ${forged[n % 2]}`
          try {
            const r = await client.request({ path: `/api/${role}/${i}-${n}`, method: 'GET', headers })
            await r.body.dump()
            served++
            const sec = perSecond[Math.min(SOAK_SECONDS, Math.floor((Date.now() - t0) / 1000))]
            sec[0]++
            if (role === 'good' && r.statusCode === 200) sec[1]++
            clientStatus(role, String(r.statusCode))
            if (role !== 'good' && r.statusCode < 300) attackPassed++
          } catch (e) {
            clientStatus(role, `error ${(e as { code?: string }).code ?? (e as Error).name}`)
            await sleep(50)
          }
        }
      } finally {
        await client.destroy()
      }
    }

    // ---- reloads every 3 s: valid and invalid in turn, through POST /config, the watched file and SIGHUP ----
    const reloadOutcomes = new Map<string, number>()
    let reloadAnomalies = 0
    const reloads = async (): Promise<void> => {
      const kinds = ['post valid', 'post invalid', 'file invalid', 'file valid', 'sighup'] as const
      for (let k = 0; k < 100_000 && Date.now() + RELOAD_EVERY_MS < end; k++) {
        await sleep(RELOAD_EVERY_MS)
        const kind = kinds[k % kinds.length]
        const gen = k + 1
        if (kind === 'post valid' || kind === 'post invalid') {
          try {
            const r = await request(`http://127.0.0.1:${adminPort}/config`, { method: 'POST', body: config(gen, kind === 'post invalid'), headers: { 'content-type': 'application/yaml' } })
            await r.body.dump()
            inc(reloadOutcomes, `${kind} → ${r.statusCode}`)
            if (r.statusCode !== (kind === 'post valid' ? 200 : 400)) reloadAnomalies++
          } catch (e) {
            inc(reloadOutcomes, `${kind} → ${(e as Error).message}`)
            reloadAnomalies++
          }
        } else if (kind === 'sighup') {
          gw!.proc.kill('SIGHUP')
          inc(reloadOutcomes, kind)
        } else {
          writeFileSync(file, config(gen, kind === 'file invalid'))
          inc(reloadOutcomes, kind)
        }
      }
    }

    // ---- the fault schedule, and token refreshes while the IdP is up ----
    const chaos = async (): Promise<void> => {
      let next = 0
      let lastMint = Date.now()
      for (let tick = 0; tick < MAX_CHAOS_TICKS && Date.now() < end; tick++) {
        await sleep(250)
        const t = Date.now() - t0
        if (next < plan.length && t >= plan[next].at * D) {
          const step = plan[next++]
          try { await step.run() } catch (e) { events.push(`${(t / 1000).toFixed(1)}s ${step.phase} FAILED: ${(e as Error).message}`) }
          phase = step.phase
          phases.push(phase)
          events.push(`${(t / 1000).toFixed(1)}s ${phase}`)
        }
        const idpUp = !phase.includes('idp down')
        if (idpUp && Date.now() - lastMint > TOKEN_REFRESH_MS) {
          lastMint = Date.now()
          await mint().catch(() => undefined)
        }
      }
    }

    let rssWarm = 0
    const warm = sleep(Math.min(5000, D / 4)).then(() => { rssWarm = rssMb(pid) })
    await Promise.all([...Array.from({ length: CONNECTIONS }, (_, i) => drive(i)), reloads(), chaos(), warm])
    const rssEnd = rssMb(pid)
    const cpuUsed = cpuSeconds(pid) - cpuStart
    const aliveAtEnd = gwExit === undefined
    const readyAtEnd = aliveAtEnd ? (await request(`http://127.0.0.1:${adminPort}/status/ready`)).statusCode : 0
    const tDrain = Date.now()
    gw.proc.kill('SIGTERM')
    const exit = await Promise.race([gw.exited, sleep(15_000).then(() => 'no exit within 15 s')])
    const drainMs = Date.now() - tDrain
    const unhandled = /unhandled|uncaught|FATAL ERROR|Segmentation/i.test(gw.stderr)

    // ---- the report ----
    const violations = [...up.violations.values()].reduce((a, b) => a + b, 0)
    const sorted = (m: Map<string, number>): Array<[string, number]> => [...m.entries()].sort((a, b) => b[1] - a[1])
    const lines: string[] = []
    const row = (k: string, v: string | number): void => { lines.push(`| ${k.padEnd(44)} | ${String(v).padStart(14)} |`) }
    lines.push(`certbound faults under load — ${SOAK_SECONDS} s, ${CONNECTIONS} keep-alive connections (48 good, 8 stolen-token, 4 no-token, 4 forged), full chain`)
    lines.push('')
    lines.push(`| ${'measure'.padEnd(44)} | ${'value'.padStart(14)} |`)
    lines.push(`|${'-'.repeat(46)}|${'-'.repeat(16)}|`)
    row('requests served (responses received)', served)
    row('  per second; gateway CPU (one core = 100 %)', `${Math.round(served / SOAK_SECONDS)}; ${Math.round(cpuUsed / SOAK_SECONDS * 100)} %`)
    row('requests at the upstream', up.received)
    row('  verified there (valid binding)', up.verified)
    row('  VIOLATIONS (passed without verification)', violations)
    row('attack requests answered 2xx', attackPassed)
    row('gateway crashed / unhandled error', `${aliveAtEnd ? 'no' : 'CRASHED'} / ${unhandled ? 'YES' : 'no'}`)
    row('exit code after SIGTERM (drain time)', `${String(exit)} (${drainMs} ms)`)
    row('/status/ready at the end', readyAtEnd)
    row('reloads applied / refused (gateway log)', `${applied} / ${refused}`)
    row('RSS MB: start / warm / end', `${rssStart} / ${rssWarm} / ${rssEnd}`)
    lines.push('')
    lines.push('5xx by cause (gateway access log `err`):')
    for (const [k, v] of sorted(gw5xx)) lines.push(`  ${String(v).padStart(8)}  ${k}`)
    if (gw5xx.size === 0) lines.push('  none')
    lines.push('')
    lines.push('responses by phase (role status: count, client side):')
    for (const p of [...new Set(phases)]) {
      const m = byPhase.get(p)
      if (m === undefined) continue
      lines.push(`  ${p}: ${sorted(m).map(([k, v]) => `${k}: ${v}`).join(', ')}`)
    }
    lines.push('')
    lines.push(`gateway access log by role and status: ${sorted(gwStatus).map(([k, v]) => `${k}: ${v}`).join(', ')}`)
    lines.push(`reloads sent: ${sorted(reloadOutcomes).map(([k, v]) => `${k}: ${v}`).join(', ')}; anomalies: ${reloadAnomalies}`)
    lines.push(`gateway error lines: ${gwErrors.size === 0 ? 'none' : sorted(gwErrors).map(([k, v]) => `${k}: ${v}`).join('; ')}`)
    if (violations > 0) lines.push(`violations: ${sorted(up.violations).map(([k, v]) => `${k}: ${v}`).join('; ')}`)
    lines.push(`events: ${events.join(' · ')}`)
    lines.push(`good 200s per second: ${perSecond.slice(0, SOAK_SECONDS).map(s => s[1]).join(' ')}`)
    if (gw.stderr.trim() !== '') lines.push(`gateway stderr: ${gw.stderr.trim().slice(0, 2000)}`)
    const report = lines.join('\n')
    console.log('\n' + report + '\n')
    const out = join(ROOT, 'bench', 'results', `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-faults`)
    mkdirSync(out, { recursive: true })
    writeFileSync(join(out, 'summary.txt'), report + '\n')
    writeFileSync(join(out, 'summary.json'), JSON.stringify({
      seconds: SOAK_SECONDS, connections: CONNECTIONS, served, upstream: { received: up.received, verified: up.verified, violations: Object.fromEntries(up.violations) },
      attackPassed, crashed: !aliveAtEnd, unhandled, exit, drainMs, readyAtEnd, reloads: { applied, refused, sent: Object.fromEntries(reloadOutcomes), anomalies: reloadAnomalies },
      rssMb: { start: rssStart, warm: rssWarm, end: rssEnd }, gatewayCpuSeconds: cpuUsed, perSecond, fiveXxByCause: Object.fromEntries(gw5xx), byPhase: Object.fromEntries([...byPhase].map(([k, v]) => [k, Object.fromEntries(v)])), events,
    }, null, 2) + '\n')

    expect(violations, 'requests the upstream could not verify').toBe(0)
    expect(attackPassed, 'attack requests answered 2xx').toBe(0)
    expect(aliveAtEnd, 'the gateway process was alive at the end').toBe(true)
    expect(unhandled, 'unhandled errors on the gateway\'s stderr').toBe(false)
    expect(exit, 'exit code after SIGTERM').toBe(0)
    expect(reloadAnomalies, 'reloads answered other than expected').toBe(0)
    expect(up.verified).toBeGreaterThan(0)
  })
})
