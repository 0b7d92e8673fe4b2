#!/usr/bin/env node
// Copied from ../shared/anchors-bench/node-naive-proxy.mjs (certbound reference harness): scenario S4; --token-cache
// (scenario S4k) is ours, the "naive Node proxy + a map of already-verified tokens" row.
// S4: a deliberately straightforward Node implementation of the certbound chain, as a rough anchor for
// "what plain Node achieves". node:https (mTLS, requestCert) -> jose jwtVerify (ES256, typ at+jwt, iss,
// aud, exp) -> scope -> RFC 8705 cnf."x5t#S256" == base64url(sha256(peer cert DER)) -> inject
// x-credential-* -> undici Pool (keep-alive) to the upstream; else 401 Bearer error="invalid_token".
//
// usage: node node-naive-proxy.mjs --port 8444 --pki /tmp/bench/pki --jwt-pub /tmp/bench/jwt/pub.pem
//                                  [--upstream http://127.0.0.1:9000] [--workers 0|N]
//   --workers 0: single process (default). N > 0: node:cluster primary + N workers (round-robin).
import https from 'node:https'
import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { jwtVerify, importSPKI } from 'jose'
import { Pool } from 'undici'

const { values: a } = parseArgs({
  options: {
    port: { type: 'string', default: '8444' },
    host: { type: 'string', default: '127.0.0.1' },
    pki: { type: 'string', default: '/tmp/bench/pki' },
    'jwt-pub': { type: 'string', default: '/tmp/bench/jwt/pub.pem' },
    upstream: { type: 'string', default: 'http://127.0.0.1:9000' },
    workers: { type: 'string', default: '0' },
    // the "naive Node proxy + a map of already-verified tokens" reference (S4k): a verified token's claims
    // are kept in a Map; exp, scope and the certificate binding are still checked on every request
    'token-cache': { type: 'boolean', default: false },
    iss: { type: 'string', default: 'https://127.0.0.1:9449' }, // the static issuer S5 discovers (bench/lib.sh passes it explicitly)
    aud: { type: 'string', default: 'https://api.example.test' },
    scope: { type: 'string', default: 'system-access' },
  },
})
const WORKERS = Number(a.workers)

if (WORKERS > 0 && cluster.isPrimary) {
  for (let i = 0; i < WORKERS; i++) cluster.fork()
  let ready = 0
  cluster.on('listening', () => { if (++ready === WORKERS) console.log(`node-naive-proxy: primary ${process.pid}, ${WORKERS} workers on ${a.host}:${a.port}`) })
  cluster.on('exit', (w, code, sig) => { console.error(`worker ${w.process.pid} exited (${code ?? sig})`); process.exitCode = 1 })
  const stop = () => { for (const w of Object.values(cluster.workers)) w.kill('SIGTERM'); setTimeout(() => process.exit(0), 500).unref() }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else {
  await serve()
}

async function serve () {
  const key = await importSPKI(readFileSync(a['jwt-pub'], 'utf8'), 'ES256')
  const pool = new Pool(a.upstream, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 })
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host'])
  const CRED = new Set(['x-credential-sub', 'x-credential-scope', 'x-credential-client-id'])
  const THUMB = Symbol('x5t#S256')
  const CACHE = a['token-cache'] ? new Map() : undefined

  // RFC 8705 thumbprint of the verified peer certificate, computed once per TLS connection
  function thumbprint (socket) {
    if (socket[THUMB] === undefined) {
      const cert = socket.getPeerCertificate()
      socket[THUMB] = cert && cert.raw ? createHash('sha256').update(cert.raw).digest('base64url') : null
    }
    return socket[THUMB]
  }

  function deny (res) {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'text/plain', 'content-length': '14' })
    res.end('invalid_token\n')
  }

  async function authorize (req) {
    const auth = req.headers.authorization
    if (!auth) return null
    const sp = auth.indexOf(' ')
    if (sp < 0 || auth.slice(0, sp).toLowerCase() !== 'bearer') return null
    const token = auth.slice(sp + 1).trim()
    let payload = CACHE?.get(token)
    if (payload !== undefined) {
      if (payload.exp * 1000 <= Date.now()) { CACHE.delete(token); return null }
    } else try {
      ;({ payload } = await jwtVerify(token, key, {
        algorithms: ['ES256'], typ: 'at+jwt', issuer: a.iss, audience: a.aud, requiredClaims: ['exp'],
      }))
      if (CACHE !== undefined) { if (CACHE.size >= 10_000) CACHE.clear(); CACHE.set(token, payload) }
    } catch {
      return null
    }
    if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes(a.scope)) return null
    const cnf = payload.cnf && payload.cnf['x5t#S256']
    if (typeof cnf !== 'string' || cnf !== thumbprint(req.socket)) return null
    return payload
  }

  const server = https.createServer({
    key: readFileSync(join(a.pki, 'server.key')),
    cert: readFileSync(join(a.pki, 'server.crt')),
    ca: readFileSync(join(a.pki, 'ca.crt')),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    keepAliveTimeout: 60_000,
  }, async (req, res) => {
    if (req.url === '/whoami') {
      const c = req.socket.getPeerCertificate()
      const body = `verify=${req.socket.authorized ? 'SUCCESS' : 'FAILED'} dn=/O=${c.subject?.O}/CN=${c.subject?.CN} proto=${req.socket.getProtocol()} cipher=${req.socket.getCipher()?.standardName}\n`
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
      return res.end(body)
    }
    const claims = await authorize(req)
    if (!claims) return deny(res)

    const headers = {}
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && !CRED.has(k)) headers[k] = v
    headers['x-credential-sub'] = String(claims.sub ?? '')
    headers['x-credential-scope'] = claims.scope
    headers['x-credential-client-id'] = String(claims.client_id ?? '')
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
    try {
      const up = await pool.request({ path: req.url, method: req.method, headers, body: hasBody ? req : undefined })
      const out = {}
      for (const [k, v] of Object.entries(up.headers)) if (!HOP.has(k)) out[k] = v
      res.writeHead(up.statusCode, out)
      up.body.on('error', () => res.destroy())
      up.body.pipe(res)
    } catch {
      if (!res.headersSent) { res.writeHead(502, { 'content-type': 'text/plain' }); res.end('bad gateway\n') } else res.destroy()
    }
  })
  server.on('tlsClientError', () => {}) // handshake failures (no/unknown cert) are expected in the checks
  server.listen(Number(a.port), a.host, () => {
    if (!cluster.isWorker) console.log(`node-naive-proxy: pid ${process.pid} on ${a.host}:${a.port} -> ${a.upstream}`)
  })
  const stop = () => { server.close(); pool.close().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 500).unref() }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
