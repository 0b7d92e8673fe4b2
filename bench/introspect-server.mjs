#!/usr/bin/env node
// A tiny RFC 7662 introspection endpoint for scenario S6 (certbound's token-introspection plugin, warm cache).
// Written for bench/ (not in ../shared/anchors-bench).
//
// POST /introspect (application/x-www-form-urlencoded: token=..., token_type_hint=...), client authenticated
// with client_secret_basic or client_secret_post (--client-id / --client-secret). The token is a JWT from
// mint-token.mjs: its ES256 signature, iss and exp are verified with jose against --jwt-pub; valid ->
// {"active": true, ...its claims, "token_type": "Bearer"}, otherwise {"active": false}. So tampered, expired and
// foreign-key tokens are inactive, and the binding (cnf) and scope checks are left to the gateway.
// GET /stats -> {"introspections": N, "active": A, "inactive": I, "unauthorized": U}: with a warm cache the gateway
// asks once per distinct token, not once per request (run.sh reports the count).
//
// usage: node introspect-server.mjs --port 9450 --pki DIR --jwt-pub pub.pem --iss URL
//          [--client-id certbound-bench --client-secret bench-secret] [--plain]   (--plain: HTTP instead of HTTPS)
import https from 'node:https'
import http from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { timingSafeEqual } from 'node:crypto'
import { URLSearchParams } from 'node:url'
import { jwtVerify, importSPKI } from 'jose'

const { values: a } = parseArgs({
  options: {
    port: { type: 'string', default: '9450' },
    host: { type: 'string', default: '127.0.0.1' },
    pki: { type: 'string' },
    'jwt-pub': { type: 'string' },
    iss: { type: 'string', default: 'https://127.0.0.1:9449' },
    'client-id': { type: 'string', default: 'certbound-bench' },
    'client-secret': { type: 'string', default: 'bench-secret' },
    plain: { type: 'boolean', default: false },
  },
})
if (!a['jwt-pub'] || (!a.plain && !a.pki)) {
  console.error('usage: introspect-server.mjs --port N --pki DIR --jwt-pub pub.pem --iss URL (see header)')
  process.exit(2)
}
const key = await importSPKI(readFileSync(a['jwt-pub'], 'utf8'), 'ES256')
const stats = { introspections: 0, active: 0, inactive: 0, unauthorized: 0 }

const eq = (x, y) => {
  const bx = Buffer.from(String(x)); const by = Buffer.from(String(y))
  return bx.length === by.length && timingSafeEqual(bx, by)
}
function clientOk (req, form) {
  const h = req.headers.authorization
  if (h && /^basic /i.test(h)) {
    const dec = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8')
    const i = dec.indexOf(':')
    if (i < 0) return false
    // RFC 6749 §2.3.1: client_id and secret are form-urlencoded before base64
    const id = decodeURIComponent(dec.slice(0, i).replace(/\+/g, ' '))
    const secret = decodeURIComponent(dec.slice(i + 1).replace(/\+/g, ' '))
    return eq(id, a['client-id']) && eq(secret, a['client-secret'])
  }
  return eq(form.get('client_id') ?? '', a['client-id']) && eq(form.get('client_secret') ?? '', a['client-secret'])
}
function send (res, status, obj, extra = {}) {
  const body = JSON.stringify(obj)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra })
  res.end(body)
}

async function handle (req, res) {
  if (req.method === 'GET' && req.url === '/stats') return send(res, 200, stats)
  if (req.method !== 'POST' || req.url.split('?')[0] !== '/introspect') return send(res, 404, { error: 'not_found' })
  const chunks = []
  let size = 0
  for await (const c of req) { size += c.length; if (size > 65536) return send(res, 413, { error: 'invalid_request' }); chunks.push(c) }
  const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
  if (!clientOk(req, form)) {
    stats.unauthorized++
    return send(res, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="introspection"' })
  }
  stats.introspections++
  const token = form.get('token')
  if (!token) return send(res, 400, { error: 'invalid_request', error_description: 'token is required' })
  try {
    const { payload } = await jwtVerify(token, key, { algorithms: ['ES256'], issuer: a.iss, requiredClaims: ['exp'] })
    stats.active++
    return send(res, 200, { ...payload, active: true, token_type: 'Bearer' })
  } catch {
    stats.inactive++
    return send(res, 200, { active: false })
  }
}

const onRequest = (req, res) => { handle(req, res).catch(() => { if (!res.headersSent) send(res, 500, { error: 'server_error' }); else res.destroy() }) }
const server = a.plain
  ? http.createServer(onRequest)
  : https.createServer({ key: readFileSync(join(a.pki, 'server.key')), cert: readFileSync(join(a.pki, 'server.crt')) }, onRequest)
server.listen(Number(a.port), a.host, () => {
  console.log(`introspect-server: pid ${process.pid} on ${a.plain ? 'http' : 'https'}://${a.host}:${a.port}/introspect (iss ${a.iss})`)
})
const stop = () => {
  console.log(`introspect-server: stopping; ${JSON.stringify(stats)}`)
  server.close()
  setTimeout(() => process.exit(0), 200).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
