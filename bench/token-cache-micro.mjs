#!/usr/bin/env node
// Should a locally verified JWT go through the shared verified-token tier (src/auth/token-cache.ts)? Compares, in
// CPU per operation (process.cpuUsage over a bounded loop, --concurrency in flight, no sockets to the gateway):
//   verify      one ES256 JWT verification with jose (what an L1 miss costs for a JWT, or for the built-in AS's
//               in-process introspection, which verifies its own JWT)
//   open        unsealing a Redis value (AES-256-GCM, gateway.store.secret) and parsing it
//   redis-get   one L2 hit through the redis backend: RedisStore.get of a stored answer + JSON.parse (this process's
//               CPU; redis-server's own CPU reported apart)
//   ipc-get     one L2 hit through gateway.workers' memory store: IpcStore.get in a forked worker, answered by the
//               primary's StoreHost (the worker's CPU and the primary's CPU, both counted: both are the gateway's)
//   plugin      token-introspection's access() on a per-process cache miss (a new token each request), answered
//               from the shared tier (Redis, sealed) or by the IdP (plain HTTP, in a child process, not counted):
//               what the shared tier spares a node per token another node already introspected
// Run after `npm run build`:  node bench/token-cache-micro.mjs [--n 20000] [--concurrency 64]
// Starts its own redis-server on a free loopback port and stops it by PID. Every loop is bounded in count.
import { fork, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { SignJWT, generateKeyPair, exportJWK, createLocalJWKSet, jwtVerify } from 'jose'

const dist = new URL('../dist/', import.meta.url)
const { RedisStore } = await import(new URL('src/store/redis.js', dist).href)
const { MemoryStore } = await import(new URL('src/store/memory.js', dist).href)
const { IpcStore, StoreHost } = await import(new URL('src/store/ipc.js', dist).href)
const { createSecretBox } = await import(new URL('src/store/secret-box.js', dist).href)

const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '64' }, child: { type: 'boolean', default: false }, idp: { type: 'boolean', default: false } } })
const N = Number(values.n)
const CONC = Number(values.concurrency)

// a typical L2 value: an introspection answer / JWT claims set with the bounds (what token-cache.ts stores)
const claims = { active: true, iss: 'https://idp.bench.test/realms/r', aud: 'https://api.bench.test', sub: 'service-account-bench', client_id: 'bench-client', scope: 'system-access read write', token_type: 'Bearer', exp: 4102444800, iat: 1767225600, jti: 'a7b1c2d3e4f5a6b7c8d9e0f1', cnf: { 'x5t#S256': 'bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2' } }
const VALUE = JSON.stringify({ v: 1, at: 1767225600000, until: 4102444800000, claims })
const KEY = 'tok:AbCdEfGhIjKl:' + 'x'.repeat(43)

/** CPU µs per op of `op` run N times, CONC in flight. */
async function measure (op, n = N) {
  for (let i = 0; i < Math.min(2000, n); i++) await op() // warm up
  let next = 0
  const c0 = process.cpuUsage(); const t0 = performance.now()
  const lane = async () => { while (next++ < n) await op() }
  await Promise.all(Array.from({ length: CONC }, lane))
  const c = process.cpuUsage(c0); const wall = performance.now() - t0
  return { cpuUs: (c.user + c.system) / n, wallMs: wall }
}

if (values.idp) {
  // the IdP for the plugin case: RFC 7662, every token active (its CPU is not the gateway's)
  const { createServer: httpServer } = await import('node:http')
  const srv = httpServer((req, res) => {
    req.resume()
    // unbound (no cnf): the bench's requests come without a client certificate
    req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ ...claims, cnf: undefined })) })
  })
  srv.listen(0, '127.0.0.1', () => process.send({ type: 'idp', port: srv.address().port }))
  process.on('disconnect', () => srv.close())
} else if (values.child) {
  // the worker side of gateway.workers: IpcStore over the fork's IPC channel
  const store = new IpcStore((m) => process.send(m), () => Date.now())
  process.on('message', (m) => { store.handleMessage(m) })
  await store.sync()
  process.send({ type: 'bench-ready' })
  await new Promise(r => process.once('message', r))
  const r = await measure(async () => { JSON.parse(await store.get(KEY)) })
  process.send({ type: 'bench-result', ...r })
  process.disconnect()
} else {
  const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)) }) })
  const out = {}

  // 1. ES256 verification (jose, local JWKS), as JwtValidator does on an L1 miss
  const { privateKey, publicKey } = await generateKeyPair('ES256')
  const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] })
  const { active: _active, token_type: _tokenType, ...jwtClaims } = claims
  const jwt = await new SignJWT(jwtClaims).setProtectedHeader({ alg: 'ES256', kid: 'k1', typ: 'at+jwt' }).sign(privateKey)
  out.verify = await measure(async () => { await jwtVerify(jwt, jwks, { issuer: claims.iss, audience: claims.aud, algorithms: ['ES256'], currentDate: new Date(1767225600000) }) })

  // 1b. open: what a Redis value costs on top of the get (AES-256-GCM with gateway.store.secret, src/store/secret-box.ts)
  const box = createSecretBox('bench-secret-bench-secret-bench-secret')
  const sealed = box.seal(VALUE, KEY)
  out.open = await measure(async () => { JSON.parse(box.open(sealed, KEY)) })

  // 2. redis-get: a real redis-server on loopback
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  try {
    const store = new RedisStore({ redis: { url: `redis://127.0.0.1:${port}` }, now: () => Date.now() })
    await store.started(5000)
    await store.set(KEY, VALUE, 3_600_000)
    const stat = () => { const f = readFileSync(`/proc/${redis.pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) * 1e6 / 100 }
    const r0 = stat()
    out['redis-get'] = await measure(async () => { JSON.parse(await store.get(KEY)) })
    out['redis-get'].redisServerCpuUs = (stat() - r0) / (N + Math.min(2000, N))
    await store.close()
  } finally { redis.kill('SIGKILL') }

  // 3. ipc-get: a forked worker asking this process (the primary's StoreHost)
  const owner = new MemoryStore({ now: () => Date.now() })
  await owner.set(KEY, VALUE, 3_600_000)
  const host = new StoreHost(owner)
  const child = fork(new URL(import.meta.url).pathname, ['--child', '--n', String(N), '--concurrency', String(CONC)], { stdio: 'inherit' })
  const peer = { id: 1, send: (m) => child.send(m) }
  let p0
  const result = await new Promise((resolve) => {
    child.on('message', (m) => {
      if (m?.type === 'bench-ready') { p0 = process.cpuUsage(); child.send({ type: 'bench-go' }); return }
      if (m?.type === 'bench-result') { const p = process.cpuUsage(p0); resolve({ ...m, primaryCpuUs: (p.user + p.system) / (N + Math.min(2000, N)) }); return }
      host.handle(peer, m)
    })
  })
  out['ipc-get'] = { cpuUs: result.cpuUs, wallMs: result.wallMs, primaryCpuUs: result.primaryCpuUs }

  // 4. plugin: token-introspection on an L1 miss, L2 hit vs the IdP
  {
    const { default: ti } = await import(new URL('plugins/token-introspection/index.js', dist).href)
    const { RequestContext } = await import(new URL('src/pipeline/context.js', dist).href)
    const { createHttpClient } = await import(new URL('src/http-client/index.js', dist).href)
    const { IncomingMessage } = await import('node:http')
    const { Socket } = await import('node:net')
    const { pino } = await import('pino')
    const silent = pino({ level: 'silent' })
    const idpProc = fork(new URL(import.meta.url).pathname, ['--idp'], { stdio: 'inherit' })
    const idpPort = await new Promise(resolve => idpProc.on('message', m => { if (m?.type === 'idp') resolve(m.port) }))
    const rport = await freePort()
    const redis2 = spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const stores = []
    try {
      const http = createHttpClient()
      const make = async (shared) => {
        const store = shared ? new RedisStore({ redis: { url: `redis://127.0.0.1:${rport}` }, now: () => Date.now(), secret: 'bench-secret-bench-secret-bench-secret' }) : new MemoryStore({ now: () => Date.now() })
        if (shared) { stores.push(store); await store.started(5000) }
        return ti.create(ti.schema.parse({ introspection_endpoint: `http://127.0.0.1:${idpPort}/introspect`, client_id: 'gw', client_secret: 's', ttl: 3600, cache_size: 4 * N }), {
          baseDir: '.', resolvePath: (x) => x, logger: silent, http, where: 'bench', local: { get: () => undefined }, store, now: () => Date.now(),
        })
      }
      const ctx = (t) => {
        const req = new IncomingMessage(new Socket())
        req.method = 'GET'; req.url = '/'; req.rawHeaders = ['Authorization', 'Bearer ' + t]; req.headers = { authorization: 'Bearer ' + t }
        return new RequestContext({ id: 'b', startNs: 0n, req, method: 'GET', path: '/', query: '', remoteAddress: '127.0.0.1', route: { name: 'r' }, tls: null, listenerTls: false, log: silent })
      }
      const M = Math.min(N, 5000)
      const toks = (p) => Array.from({ length: M + 2000 }, (_, i) => `${p}-${i}-${Math.random().toString(36).slice(2)}`)
      const run = async (inst, ts) => { let i = 0; return await measure(async () => { await inst.access(ctx(ts[i++])) }, M) }
      const shared = toks('s')
      const writer = await make(true)
      for (let i = 0; i < shared.length; i += CONC) await Promise.all(shared.slice(i, i + CONC).map(t => writer.access(ctx(t))))
      out['plugin-l2-hit'] = await run(await make(true), shared)
      out['plugin-idp'] = await run(await make(false), toks('i'))
    } finally {
      for (const st of stores) await st.close()
      redis2.kill('SIGKILL')
      idpProc.kill('SIGKILL')
    }
  }

  const f = (x) => x.toFixed(1)
  console.log(`token-cache micro: n=${N} concurrency=${CONC} value=${VALUE.length} B (node ${process.version})`)
  console.log(`  verify     ES256 JWT (jose)            ${f(out.verify.cpuUs)} µs CPU/op`)
  console.log(`  open       unseal + JSON.parse (Redis)   ${f(out.open.cpuUs)} µs CPU/op`)
  console.log(`  redis-get  L2 hit, this process        ${f(out['redis-get'].cpuUs)} µs CPU/op (+ redis-server ${f(out['redis-get'].redisServerCpuUs)} µs)`)
  console.log(`  ipc-get    L2 hit, worker + primary    ${f(out['ipc-get'].cpuUs)} + ${f(out['ipc-get'].primaryCpuUs)} = ${f(out['ipc-get'].cpuUs + out['ipc-get'].primaryCpuUs)} µs CPU/op`)
  console.log(`  plugin     token-introspection, L1 miss: shared-tier hit ${f(out['plugin-l2-hit'].cpuUs)} µs vs IdP call ${f(out['plugin-idp'].cpuUs)} µs CPU/request (this process)`)
  console.log(JSON.stringify(out))
}
