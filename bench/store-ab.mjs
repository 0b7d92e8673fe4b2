#!/usr/bin/env node
// gateway.store A/B (issue 13): the same full chain — openid-connect validating the built-in AS's JWTs in process
// (which checks the AS's revocation set on every request) + request-termination — on gateway.store memory and
// gateway.store redis (a redis-server on loopback, pinned with the load generator), in one run, alternating rounds.
// Reports the gateway's CPU per request (utime+stime from /proc) and latency percentiles per backend, and the ratios.
//
// usage: npm run build && node bench/store-ab.mjs [--rounds 3] [--seconds 8] [--connections 32]
// needs: redis-server, taskset (optional: pins the gateway to cpu0, load + redis to cpu1). Loopback only; every
// load run is bounded in time and count.
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir, cpus } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request as httpsRequest } from 'node:https'
import { Pool } from 'undici'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const arg = (n, d) => { const i = process.argv.indexOf('--' + n); return i > 0 ? Number(process.argv[i + 1]) : d }
const ROUNDS = arg('rounds', 3); const SECONDS = arg('seconds', 8); const CONNS = arg('connections', 32); const MAX_REQ = 2_000_000
const pin = (cpu) => (cpus().length > 1 && hasTaskset()) ? ['taskset', '-c', String(cpu)] : []
function hasTaskset () { try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false } }
const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) }) })
const sleep = (ms) => new Promise(r => setTimeout(r, ms))

const dir = mkdtempSync(join(tmpdir(), 'cb-store-ab-'))
const procs = []
const cleanup = () => { for (const p of procs) { try { p.kill('SIGKILL') } catch { /* already gone */ } } rmSync(dir, { recursive: true, force: true }) }
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))

execFileSync(process.execPath, [join(ROOT, 'bin/certbound.js'), 'certs', '--out', join(dir, 'certs'), '--hosts', 'localhost,127.0.0.1'], { stdio: 'ignore' })
const redisPort = await freePort()
const [rc, ...ra] = [...pin(1), 'redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
procs.push(spawn(rc, ra, { stdio: 'ignore' }))
await sleep(300)

const tls = { ca: readFileSync(join(dir, 'certs/ca.crt')), cert: readFileSync(join(dir, 'certs/client1.crt')), key: readFileSync(join(dir, 'certs/client1.key')), servername: 'localhost' }

function config (port, admin, backend) {
  const iss = `https://localhost:${port}`
  return `_format_version: "3.0"
gateway:
  access_log: false
  log_level: warn
  listen:
    - address: 127.0.0.1:${port}
      tls: { cert: certs/server.crt, key: certs/server.key, client_ca: certs/ca.crt, client_certificate: request }
  admin_listen: 127.0.0.1:${admin}
${backend === 'redis' ? `  store:\n    redis: { url: "redis://127.0.0.1:${redisPort}" }\n    secret: "bench-secret-bench-secret-bench-secret"\n` : ''}authorization_server:
  issuer: ${iss}
  ca_certificates: certs/ca.crt
  clients:
    - { client_id: client1, token_endpoint_auth_method: tls_client_auth, tls_client_auth_subject_dn: "CN=client1,O=Example Org", scope: system-access }
services:
  - name: echo
    url: http://127.0.0.1:9/unused
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: openid-connect
            config:
              issuer: ${iss}
              auth_methods: [bearer]
              audience_required:
                - ${iss}
              proof_of_possession_mtls: strict
          - name: request-termination
            config: { status_code: 200, message: ok }
`
}

async function startGateway (backend) {
  const port = await freePort(); const admin = await freePort()
  const file = join(dir, `${backend}.yml`)
  writeFileSync(file, config(port, admin, backend))
  const [c, ...a] = [...pin(0), process.execPath, join(ROOT, 'bin/certbound.js'), 'start', '-c', file, '--no-watch']
  const p = spawn(c, a, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_ENV: 'production' } })
  procs.push(p)
  for (let i = 0; i < 100; i++) {
    try { const r = await fetch(`http://127.0.0.1:${admin}/status/ready`); if (r.status === 200) break } catch { /* not listening yet */ }
    await sleep(100)
  }
  const token = await new Promise((res, rej) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/oauth2/token', method: 'POST', ...tls, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (r) => {
      let b = ''; r.on('data', d => { b += d }); r.on('end', () => { try { res(JSON.parse(b).access_token) } catch { rej(new Error(b)) } })
    })
    req.on('error', rej); req.end('grant_type=client_credentials&client_id=client1')
  })
  return { p, port, token }
}

const cpuTicks = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]) }
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

async function load ({ p, port, token }) {
  const pool = new Pool(`https://127.0.0.1:${port}`, { connections: CONNS, connect: tls, pipelining: 1 })
  const lat = []; let n = 0; let bad = 0
  const until = Date.now() + SECONDS * 1000
  // warm-up 1 s (not measured)
  const run = async (measure, deadline) => {
    while (Date.now() < deadline && n < MAX_REQ) {
      const t0 = performance.now()
      const r = await pool.request({ path: '/api', method: 'GET', headers: { authorization: `Bearer ${token}` } })
      await r.body.dump()
      if (measure) { lat.push(performance.now() - t0); n++; if (r.statusCode !== 200) bad++ }
    }
  }
  await Promise.all(Array.from({ length: CONNS }, () => run(false, Date.now() + 1000)))
  const c0 = cpuTicks(p.pid); const t0 = Date.now()
  await Promise.all(Array.from({ length: CONNS }, () => run(true, until + 1000)))
  const c1 = cpuTicks(p.pid); const secs = (Date.now() - t0) / 1000
  await pool.close()
  lat.sort((a, b) => a - b)
  const q = (x) => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))]
  return { rps: Math.round(n / secs), cpu_us_per_req: +((c1 - c0) * TICK_US / n).toFixed(1), p50_ms: +q(0.5).toFixed(2), p99_ms: +q(0.99).toFixed(2), requests: n, non_200: bad }
}

const results = { memory: [], redis: [] }
for (let r = 1; r <= ROUNDS; r++) {
  for (const backend of r % 2 === 1 ? ['memory', 'redis'] : ['redis', 'memory']) {
    const g = await startGateway(backend)
    const m = await load(g)
    g.p.kill('SIGTERM'); await new Promise(res => g.p.once('exit', res))
    results[backend].push(m)
    console.error(`round ${r} ${backend}: ${JSON.stringify(m)}`)
  }
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const summary = {}
for (const b of ['memory', 'redis']) summary[b] = Object.fromEntries(['rps', 'cpu_us_per_req', 'p50_ms', 'p99_ms'].map(k => [k, median(results[b].map(x => x[k]))]))
summary.ratio_cpu = +(summary.redis.cpu_us_per_req / summary.memory.cpu_us_per_req).toFixed(3)
summary.ratio_p99 = +(summary.redis.p99_ms / summary.memory.p99_ms).toFixed(3)
summary.non_200 = [...results.memory, ...results.redis].reduce((a, x) => a + x.non_200, 0)
console.log(JSON.stringify(summary, null, 1))
