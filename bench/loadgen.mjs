#!/usr/bin/env node
// Copied from ../shared/anchors-bench/loadgen.mjs (certbound reference harness); adapted for bench/ (lint fixes).
// certbound load generator: HTTP(S) with client certificates, two modes.
//
//   --mode ka  keep-alive: autocannon (programmatic, tlsOptions {cert,key,ca}), N persistent connections.
//              Latencies are taken from autocannon's per-response event (float ms), not from its
//              histogram (which has 1 ms resolution).
//   --mode hs  new connection (TCP + full TLS handshake with client cert, no session resumption) for every
//              request: `Connection: close`, the client closes after the response. Own minimal client
//              (node:tls), because autocannon's reconnectRate drops the reconnecting response from its
//              stats (httpClient.js returns before emitting 'response').
//   --mode rs  as hs, but each connection slot offers the TLS session ticket of its previous connection
//              (an abbreviated TLS 1.3 handshake, RFC 8446 §2.2): what a client that reconnects pays. The
//              result counts how many handshakes were actually resumed (tls_resumed).
//
// Before measuring it runs a preflight through the same code path: the request must answer --expect
// (default 200), and --check-path/--check-contains can assert the server saw the client certificate
// (e.g. /whoami must contain "CN=client1").
// --watch NAME=PID[,PID...] samples utime+stime of those processes (/proc/PID/stat) over the measured
// window: reports CPU% (100 = one core) and CPU microseconds per completed request.
//
// Prints one JSON line (the result) on stdout, a one-line human summary on stderr.
//
// usage: node loadgen.mjs --url https://localhost:8441/ --mode ka|hs [--connections 64] [--duration 10]
//          [--cert c.crt --key c.key --ca ca.crt] [--token FILE] [--header 'k: v']... [--expect 200]
//          [--check-path /whoami --check-contains CN=client1] [--watch proxy=123,124]... [--label S1]
//          [--warmup SECONDS] [--max-seconds N] [--dpop-key KEY.pem]
// --dpop-key (issue 14): the token goes as `Authorization: DPoP <token>` and every request, the preflights included,
// carries a fresh RFC 9449 proof signed with KEY.pem (EC P-256, ES256): new jti, iat now, htm, htu (this URL's
// origin + the request's path), ath of the token. ka mode builds each request in autocannon's setupRequest hook.
// Signing is node:crypto on the load generator's core (~26 µs of CPU a proof): not counted in the proxy's CPU.
import autocannon from 'autocannon'
import tls from 'node:tls'
import net from 'node:net'
import { readFileSync, readdirSync } from 'node:fs'
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'

const { values: a } = parseArgs({
  options: {
    url: { type: 'string' },
    mode: { type: 'string', default: 'ka' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '0' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    servername: { type: 'string', default: 'localhost' },
    token: { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
    expect: { type: 'string', default: '200' },
    'check-path': { type: 'string' },
    'check-contains': { type: 'string' },
    watch: { type: 'string', multiple: true, default: [] },
    label: { type: 'string', default: '' },
    'max-seconds': { type: 'string', default: '60' },
    'dpop-key': { type: 'string' },
  },
})
if (!a.url || !['ka', 'hs', 'rs'].includes(a.mode)) {
  console.error('usage: loadgen.mjs --url URL --mode ka|hs|rs [options]  (see header of this file)')
  process.exit(2)
}
const url = new URL(a.url)
const secure = url.protocol === 'https:'
const port = Number(url.port || (secure ? 443 : 80))
const host = url.hostname
const CONNS = Number(a.connections)
const DURATION = Number(a.duration)
// hard bound on the whole process, whatever happens
setTimeout(() => { console.error('loadgen: --max-seconds exceeded, aborting'); process.exit(3) }, Number(a['max-seconds']) * 1000).unref()

const headers = {}
if (a.token) headers.authorization = 'Bearer ' + readFileSync(a.token, 'utf8').trim()
// RFC 9449 §4.2 proofs: the header (typ, alg, public jwk) is constant, so it is encoded once; the payload and the
// signature are new for every request (jti = a random prefix per process + a counter: unique, never reused)
let dpopProof = null
if (a['dpop-key']) {
  if (!a.token) { console.error('loadgen: --dpop-key needs --token'); process.exit(2) }
  const key = createPrivateKey(readFileSync(a['dpop-key']))
  const { kty, crv, x, y } = createPublicKey(key).export({ format: 'jwk' })
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const head = b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })
  const token = readFileSync(a.token, 'utf8').trim()
  const ath = createHash('sha256').update(token).digest('base64url')
  const origin = `${url.protocol}//${url.host}`
  const jtiBase = randomBytes(12).toString('base64url')
  let seq = 0
  dpopProof = (method, path) => {
    const input = head + '.' + b64({ jti: jtiBase + (seq++).toString(36), htm: method, htu: origin + path.split(/[?#]/)[0], iat: Math.floor(Date.now() / 1000), ath })
    return input + '.' + cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  }
  headers.authorization = 'DPoP ' + token
}
const withProof = (h, method, path) => dpopProof ? { ...h, dpop: dpopProof(method, path) } : h
for (const h of a.header) { const i = h.indexOf(':'); headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim() }
const tlsFiles = secure
  ? { ...(a.cert && { cert: readFileSync(a.cert) }), ...(a.key && { key: readFileSync(a.key) }), ...(a.ca && { ca: readFileSync(a.ca) }) }
  : null

// ---------- CPU accounting of watched processes ----------
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
const watch = a.watch.map((w) => { const [name, pids] = w.split('='); return { name, pids: pids.split(',').filter(Boolean).map(Number) } })
function ticks (pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ') // f[0] is field 3 (state)
    return Number(f[11]) + Number(f[12]) // utime (14) + stime (15)
  } catch { return NaN }
}
const watchSnap = () => watch.map((w) => w.pids.reduce((t, p) => t + ticks(p), 0))
// per-core busy/steal from /proc/stat (cpuN lines): user nice system idle iowait irq softirq steal ...
function coreSnap () {
  const o = {}
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^(cpu\d+) (.*)$/.exec(line)
    if (!m) continue
    const v = m[2].trim().split(/\s+/).map(Number)
    const total = v.slice(0, 8).reduce((x, y) => x + y, 0)
    o[m[1]] = { total, idle: v[3] + v[4], steal: v[7], softirq: v[5] + v[6] }
  }
  return o
}
// CPU ticks of every other process on the machine (not this one, not watched): who else was busy
const mine = new Set([process.pid, ...watch.flatMap((w) => w.pids)])
function foreignSnap () {
  const o = new Map()
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || mine.has(Number(d))) continue
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8')
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ')
      o.set(d, { t: Number(f[11]) + Number(f[12]), name: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')) })
    } catch { /* the process exited meanwhile */ }
  }
  return o
}
const snap = () => ({ w: watchSnap(), c: coreSnap(), f: foreignSnap() })

// ---------- percentile helpers ----------
function pct (sorted, p) {
  if (!sorted.length) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}
const r3 = (x) => (x == null || Number.isNaN(x) ? null : Math.round(x * 1000) / 1000)

// ---------- mode ka: autocannon ----------
function kaOpts (extra) {
  return {
    url: a.url,
    connections: CONNS,
    headers,
    timeout: 10,
    ...(secure && { tlsOptions: { ...tlsFiles }, servername: a.servername }),
    // a fresh proof per request: autocannon rebuilds the request through this hook every time
    ...(dpopProof && { requests: [{ method: 'GET', path: url.pathname + url.search, setupRequest: (req) => ({ ...req, headers: withProof(headers, req.method || 'GET', req.path || '/') }) }] }),
    ...extra,
  }
}
async function kaOne (path) { // one request through autocannon's own client; returns {status, body}
  let got = null
  const res = await autocannon(kaOpts({
    connections: 1,
    amount: 1,
    requests: [{ method: 'GET', path, headers: withProof(headers, 'GET', path), onResponse: (status, body) => { got = { status, body: String(body ?? '') } } }],
  }))
  if (!got) got = { status: 0, body: `errors=${res.errors} timeouts=${res.timeouts}` }
  return got
}
async function kaRun (seconds, record) {
  const lat = []
  const inst = autocannon(kaOpts({ duration: seconds }))
  let t0 = performance.now(); let cpu0; let snap0
  inst.on('start', () => { t0 = performance.now(); cpu0 = process.cpuUsage(); snap0 = snap() })
  if (record) inst.on('response', (_client, _status, _bytes, ms) => { lat.push(ms) })
  const res = await inst
  const elapsed = (performance.now() - t0) / 1000
  const snap1 = snap(); const cpu1 = process.cpuUsage(cpu0)
  return {
    completed: res.requests.total,
    elapsed,
    lat,
    non2xx: res.non2xx,
    statusCodes: Object.fromEntries(Object.entries(res.statusCodeStats || {}).map(([k, v]) => [k, v.count])),
    errors: res.errors,
    timeouts: res.timeouts,
    cpuSelf: (cpu1.user + cpu1.system) / 1e6,
    snap0, snap1,
  }
}

// ---------- mode hs: new connection + full handshake per request ----------
const reqHead = (path) => `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\n` +
  Object.entries(withProof(headers, 'GET', path)).map(([k, v]) => `${k}: ${v}\r\n`).join('') + 'Connection: close\r\n\r\n'
const secureContext = secure ? tls.createSecureContext(tlsFiles) : null

// one request on a fresh connection; cb(err, status, body, info). slot (mode rs): { session } carried from one
// connection to the next, so that the next handshake offers the ticket the server sent on this one
function hsRequest (path, verifyServer, cb, slot) {
  const sock = secure
    ? tls.connect({ host, port, servername: a.servername, secureContext, rejectUnauthorized: verifyServer, ALPNProtocols: ['http/1.1'], ...(slot?.session && { session: slot.session }) })
    : net.connect({ host, port })
  if (slot && secure) sock.on('session', (sess) => { slot.session = sess })
  sock.setNoDelay(true)
  let buf = Buffer.alloc(0); let headEnd = -1; let status = 0; let clen = -1; let chunked = false; let done = false
  const timer = setTimeout(() => finish(new Error('timeout')), 10_000)
  function finish (err) {
    if (done) return
    done = true
    clearTimeout(timer)
    const info = secure && !err ? { protocol: sock.getProtocol(), cipher: sock.getCipher()?.standardName, group: sock.getEphemeralKeyInfo()?.name ?? null, resumed: sock.isSessionReused() } : null
    sock.destroy()
    cb(err, status, headEnd >= 0 ? buf.subarray(headEnd + 4).toString() : '', info)
  }
  sock.on('error', (e) => finish(e))
  sock.on('end', () => finish(headEnd >= 0 && clen < 0 && !chunked ? null : new Error('connection closed early')))
  sock.on('data', (d) => {
    buf = buf.length ? Buffer.concat([buf, d]) : d
    if (headEnd < 0) {
      headEnd = buf.indexOf('\r\n\r\n')
      if (headEnd < 0) return
      const head = buf.subarray(0, headEnd).toString('latin1')
      status = Number(head.slice(9, 12))
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
      if (m) clen = Number(m[1]); else chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head)
    }
    const bodyLen = buf.length - headEnd - 4
    if (clen >= 0 ? bodyLen >= clen : chunked && buf.subarray(buf.length - 5).toString() === '0\r\n\r\n') finish(null)
  })
  sock.write(reqHead(path))
}
const hsOne = (path) => new Promise((resolve) => hsRequest(path, true, (err, status, body, info) =>
  resolve(err ? { status: 0, body: String(err.message) } : { status, body, info })))

function hsRun (seconds, record) {
  return new Promise((resolve) => {
    const lat = []; const statusCodes = {}
    let completed = 0; let non2xx = 0; let errors = 0; let timeouts = 0; let resumed = 0; let stopped = false; let active = CONNS
    const cpu0 = process.cpuUsage(); const snap0 = snap(); const t0 = performance.now()
    const path = url.pathname + url.search
    function loop (slot) {
      if (stopped) { if (--active === 0) end(); return }
      const start = performance.now()
      hsRequest(path, false, (err, status, _body, info) => {
        if (stopped) { loop(slot); return } // finished after the window: not counted
        if (err) { if (err.message === 'timeout') timeouts++; else errors++ } else {
          completed++
          if (info?.resumed) resumed++
          statusCodes[status] = (statusCodes[status] || 0) + 1
          if (status < 200 || status > 299) non2xx++
          if (record) lat.push(performance.now() - start)
        }
        loop(slot)
      }, slot)
    }
    let elapsed; let snapEnd; let cpuEnd
    const stopTimer = setTimeout(() => { stopped = true; elapsed = (performance.now() - t0) / 1000; snapEnd = snap(); cpuEnd = process.cpuUsage(cpu0) }, seconds * 1000)
    function end () {
      clearTimeout(stopTimer)
      resolve({ completed, elapsed, lat, non2xx, statusCodes, errors, timeouts, resumed, cpuSelf: (cpuEnd.user + cpuEnd.system) / 1e6, snap0, snap1: snapEnd })
    }
    for (let i = 0; i < CONNS; i++) loop(a.mode === 'rs' ? { session: null } : undefined)
  })
}

// ---------- main ----------
const one = a.mode === 'ka' ? kaOne : hsOne
const run = a.mode === 'ka' ? kaRun : hsRun // hs and rs: a new connection per request (rs offers the last ticket)
const path = url.pathname + url.search

const pre = await one(path)
if (String(pre.status) !== a.expect) {
  console.error(`loadgen: preflight ${a.url} answered ${pre.status}, expected ${a.expect}: ${pre.body.slice(0, 200)}`)
  process.exit(4)
}
let check = null
if (a['check-path']) {
  const c = await one(a['check-path'])
  check = c.body.trim()
  if (c.status !== 200 || (a['check-contains'] && !c.body.includes(a['check-contains']))) {
    console.error(`loadgen: check ${a['check-path']} failed (${c.status}): ${c.body.slice(0, 200)} - expected "${a['check-contains']}"`)
    process.exit(5)
  }
}
const tlsInfo = secure ? (await hsOne('/')).info ?? null : null

if (Number(a.warmup) > 0) await run(Number(a.warmup), false)
const r = await run(DURATION, true)

r.lat.sort((x, y) => x - y)
const mean = r.lat.length ? r.lat.reduce((s, x) => s + x, 0) / r.lat.length : null
const out = {
  label: a.label,
  mode: a.mode,
  url: a.url,
  connections: CONNS,
  duration_s: r3(r.elapsed),
  requests: r.completed,
  rps: Math.round(r.completed / r.elapsed),
  lat_ms: { p50: r3(pct(r.lat, 50)), p90: r3(pct(r.lat, 90)), p99: r3(pct(r.lat, 99)), mean: r3(mean), max: r3(r.lat[r.lat.length - 1]) },
  non2xx: r.non2xx,
  status: r.statusCodes,
  errors: r.errors,
  timeouts: r.timeouts,
  ...(a.mode !== 'ka' && secure && { tls_resumed: r.resumed }), // hs: must be 0 (every request a full handshake); rs: ≈ requests
  loadgen_cpu_pct: Math.round((r.cpuSelf / r.elapsed) * 1000) / 10,
  cores: Object.fromEntries(Object.keys(r.snap1.c).map((k) => {
    const d = (f) => r.snap1.c[k][f] - r.snap0.c[k][f]
    const tot = d('total') || 1
    return [k, { busy_pct: Math.round(((tot - d('idle')) / tot) * 1000) / 10, steal_pct: Math.round((d('steal') / tot) * 1000) / 10, irq_pct: Math.round((d('softirq') / tot) * 1000) / 10 }]
  })),
  // other processes that were alive at both ends of the window (short-lived ones are missed): top 5
  foreign: (() => {
    const by = new Map()
    for (const [pid, e] of r.snap1.f) {
      const b = r.snap0.f.get(pid)
      if (!b || b.name !== e.name) continue
      by.set(e.name, (by.get(e.name) || 0) + e.t - b.t)
    }
    const total = [...by.values()].reduce((x, y) => x + y, 0)
    return {
      cpu_pct: Math.round((total / CLK_TCK / r.elapsed) * 1000) / 10,
      top: [...by.entries()].filter(([, t]) => t > 0).sort((x, y) => y[1] - x[1]).slice(0, 5)
        .map(([n, t]) => `${n} ${Math.round((t / CLK_TCK / r.elapsed) * 1000) / 10}%`),
    }
  })(),
  cpu: Object.fromEntries(watch.map((w, i) => {
    const sec = (r.snap1.w[i] - r.snap0.w[i]) / CLK_TCK
    return [w.name, { cpu_pct: Math.round((sec / r.elapsed) * 1000) / 10, us_per_req: r.completed ? Math.round((sec * 1e6) / r.completed) : null, pids: w.pids }]
  })),
  check,
  tls: tlsInfo,
  // CPU used on the machine by anything but the load generator and the watched processes (other tenants,
  // kernel softirq not charged to a process): a noise indicator, in % of one core
  other_cpu_pct: null,
  pid: process.pid,
  ts: new Date().toISOString(),
}
out.other_cpu_pct = Math.round((Object.values(out.cores).reduce((t, c) => t + c.busy_pct, 0) - out.loadgen_cpu_pct -
  Object.values(out.cpu).reduce((t, c) => t + c.cpu_pct, 0)) * 10) / 10
console.log(JSON.stringify(out))
console.error(`${a.label || a.url} ${a.mode}: ${out.rps} req/s  p50 ${out.lat_ms.p50} ms  p99 ${out.lat_ms.p99} ms  non2xx ${out.non2xx}  errors ${out.errors}  loadgen cpu ${out.loadgen_cpu_pct}%` +
  watch.map((w) => `  ${w.name} ${out.cpu[w.name].cpu_pct}% ${out.cpu[w.name].us_per_req}us/req`).join('') +
  `  other ${out.other_cpu_pct}% (irq ${Object.values(out.cores).reduce((t, c) => t + c.irq_pct, 0).toFixed(1)}%, procs ${out.foreign.cpu_pct}%)` + '  cores ' + Object.entries(out.cores).map(([k, v]) => `${k} ${v.busy_pct}%` + (v.steal_pct ? ` (steal ${v.steal_pct}%)` : '')).join(' '))
process.exit(0)
