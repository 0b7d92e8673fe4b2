/**
 * Hot reload and lifecycle (issue 6): a config file change (debounced, safe against half-written files and
 * rename-replacing editors), TLS certificates and client CAs reloaded without dropping open connections, mtls-auth
 * CRL files re-read when they change, liveness vs readiness (/status, /status/ready) with an IdP that is down at
 * start, a reload while the IdP is down, and the real process: SIGHUP re-reads the file, SIGTERM drains and exits 0.
 * POST /config (valid, invalid, in-flight requests) is covered by admin.test.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { request } from 'undici'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'
import { startIdp, type Idp } from '../helpers/idp.js'
import { openConnection, type Http1Connection } from '../helpers/http1.js'
import { ensureDist, freePort, startCertbound, waitFor, type CertboundProcess } from '../helpers/process.js'
import { issueCert } from '../../src/pki/dev-pki.js'

let pki: TestPki
let up: Upstream

beforeAll(async () => {
  pki = await createTestPki()
  up = await startUpstream()
})

afterAll(async () => {
  await up?.close()
  pki?.cleanup()
})

async function get (url: string): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await request(url)
  const text = await r.body.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch { /* not JSON */ }
  return { status: r.statusCode, json }
}

const plainConfig = (routes: string[], extra = ''): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  listen:
    - address: 127.0.0.1:0
${extra}services:
  - name: echo
    url: ${up.url}
    routes:
${routes.map(r => `      - name: ${r}\n        paths: [/${r}]\n`).join('')}`

function tlsTo (port: number, client?: TestCert): Promise<Http1Connection> {
  return openConnection({ port, tls: { ca: pki.ca.certPem, cert: client?.certPem, key: client?.keyPem } })
}

describe('reload on a change of the config file (certbound start watches it by default)', () => {
  let gw: TestGateway
  beforeAll(async () => { gw = await startGateway(plainConfig(['a']), { watch: true }) })
  afterAll(async () => { await gw?.close() })

  it('a half-written file changes nothing and is logged; the write that completes it applies', async () => {
    const before = (await get(`${gw.adminUrl}/status`)).json.config_hash
    const next = plainConfig(['a', 'b'])
    // the writer stopped inside a flow sequence: not a config, whatever the debounce saw
    const cut = next.indexOf('[/b') + 3
    gw.write(next.slice(0, cut))
    await waitFor('the refusal in the log', () => gw.logs.find(l => l.msg === 'config reload refused; the running config is unchanged'))
    const refused = gw.logs.find(l => l.msg === 'config reload refused; the running config is unchanged')!
    expect(String((refused.diagnostics as string[])[0])).toMatch(/^gateway\.yml:\d+:\d+ CB_CFG_YAML/)
    expect((await get(`${gw.url()}/a`)).status).toBe(200)
    expect((await get(`${gw.url()}/b`)).status).toBe(404)
    expect((await get(`${gw.adminUrl}/status`)).json.config_hash).toBe(before)

    gw.write(next)
    await waitFor('route /b', async () => (await get(`${gw.url()}/b`)).status === 200 ? true : undefined)
    expect((await get(`${gw.url()}/a`)).status).toBe(200)
    expect((await get(`${gw.adminUrl}/status`)).json.config_hash).not.toBe(before)
  })

  it('an editor that writes a temporary file and renames it over gateway.yml: applied', async () => {
    const tmp = join(gw.dir, '.gateway.yml.swp')
    writeFileSync(tmp, plainConfig(['c']))
    renameSync(tmp, gw.file)
    await waitFor('route /c', async () => (await get(`${gw.url()}/c`)).status === 200 ? true : undefined)
    expect((await get(`${gw.url()}/a`)).status).toBe(404)
  })

  it('an invalid config (unknown key) keeps the running one; the diagnostics name file:line', async () => {
    const n = gw.logs.length
    gw.write(plainConfig(['c']).replace('    routes:\n', '    routes:\n      - name: d\n        pats: [/d]\n'))
    const refused = await waitFor('the refusal', () => gw.logs.slice(n).find(l => l.msg === 'config reload refused; the running config is unchanged'))
    expect(refused.diagnostics).toEqual([expect.stringMatching(/^gateway\.yml:11:9 CB_CFG_UNKNOWN_FIELD services\[0\]\.routes\[0\]\.pats/)])
    expect((await get(`${gw.url()}/c`)).status).toBe(200)
  })
})

describe('TLS material reloaded without dropping connections', () => {
  let gw: TestGateway
  const tlsConfig = (clientCa: string): string => `_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: server.crt
        key: server.key
        client_ca: ${clientCa}
        client_certificate: require
services:
  - name: echo
    url: ${up.url}
    routes:
      - { name: a, paths: [/a] }
`
  beforeAll(async () => {
    gw = await startGateway(tlsConfig(pki.ca.certFile), { watch: true, files: { 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem } })
  })
  afterAll(async () => { await gw?.close() })

  it('server certificate renewed in place (certificate first, key later): open connections keep working, new handshakes get the new certificate', async () => {
    const open = await tlsTo(gw.port(), pki.client1)
    try {
      expect((await open.request('GET', '/a')).status).toBe(200)
      expect(open.serverCertificate!.serialNumber).toBe(pki.server.x509.serialNumber)
      const renewed = await issueCert(pki.ca, { kind: 'server', subject: 'CN=localhost', dns: ['localhost'], ips: ['127.0.0.1'] })

      // the certificate lands first: a key that does not match it is refused, nothing changes
      const n = gw.logs.length
      writeFileSync(join(gw.dir, 'server.crt'), renewed.certPem)
      const refused = await waitFor('the refusal', () => gw.logs.slice(n).find(l => l.msg === 'config reload refused; the running config is unchanged'))
      expect(String((refused.diagnostics as string[])[0])).toMatch(/CB_CFG_PEM gateway\.listen\[0\]\.tls\.key: server\.key is not the private key of the certificate in server\.crt/)
      const during = await tlsTo(gw.port(), pki.client1)
      expect(during.serverCertificate!.serialNumber).toBe(pki.server.x509.serialNumber)
      during.close()

      writeFileSync(join(gw.dir, 'server.key'), renewed.keyPem)
      await waitFor('the renewed certificate on a new handshake', async () => {
        const c = await tlsTo(gw.port(), pki.client1)
        c.close()
        return c.serverCertificate!.serialNumber === renewed.x509.serialNumber ? true : undefined
      })
      const fresh = await tlsTo(gw.port(), pki.client1)
      expect((await fresh.request('GET', '/a')).status).toBe(200)
      fresh.close()

      // the connection opened before the renewal was never dropped, and still answers
      expect(open.closed).toBe(false)
      expect((await open.request('GET', '/a')).status).toBe(200)
      expect(open.serverCertificate!.serialNumber).toBe(pki.server.x509.serialNumber)
    } finally {
      open.close()
    }
  })

  it('client_ca changed: new handshakes verify against the new CA, the open connection is kept', async () => {
    const open = await tlsTo(gw.port(), pki.client1)
    try {
      expect((await open.request('GET', '/a')).status).toBe(200)
      gw.write(tlsConfig(pki.otherCa.certFile))
      const r = await gw.gateway.reload()
      expect(r.ok).toBe(true)
      // client1 does not chain to the other CA: `require` refuses the handshake
      await expect(tlsTo(gw.port(), pki.client1).then(async c => { await c.request('GET', '/a'); c.close() })).rejects.toThrow()
      const other = await tlsTo(gw.port(), pki.otherClient)
      expect((await other.request('GET', '/a')).status).toBe(200)
      other.close()
      expect((await open.request('GET', '/a')).status).toBe(200)
    } finally {
      open.close()
    }
  })
})

describe('mtls-auth crl_files: re-read when they change (gateway end to end)', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: a
        paths: [/a]
        plugins:
          - name: mtls-auth
            config:
              ca_certificates: [${pki.ca.certFile}]
              crl_files: [crl.pem]
              cert_cache_ttl: 1000
`, { files: { 'crl.pem': readFileSync(pki.emptyCrlFile, 'utf8') } })
  })
  afterAll(async () => { await gw?.close() })

  it('a new CRL revokes a certificate on new and already-open connections; the next CRL restores it', async () => {
    const open = await tlsTo(gw.port(), pki.revokedClient)
    try {
      expect((await open.request('GET', '/a')).status).toBe(200)
      writeFileSync(join(gw.dir, 'crl.pem'), readFileSync(pki.crlFile))
      await waitFor('the revocation on the open connection', async () => (await open.request('GET', '/a')).status === 401 ? true : undefined, 5000)
      const fresh = await tlsTo(gw.port(), pki.revokedClient)
      expect((await fresh.request('GET', '/a')).status).toBe(401)
      fresh.close()
      const logged = gw.logs.filter(l => l.msg === 'request' && l.err === 'CB_ERR_CERT_INVALID')
      expect(String(logged[logged.length - 1].reason)).toMatch(/^revoked: /)
      // another client of the same CA is not affected
      const c1 = await tlsTo(gw.port(), pki.client1)
      expect((await c1.request('GET', '/a')).status).toBe(200)
      c1.close()

      writeFileSync(join(gw.dir, 'crl.pem'), readFileSync(pki.emptyCrlFile))
      await waitFor('the reinstatement', async () => (await open.request('GET', '/a')).status === 200 ? true : undefined, 5000)
    } finally {
      open.close()
    }
  })
})

describe('/status (liveness) and /status/ready (readiness) with an IdP that is down at start', () => {
  let idp: Idp
  let gw: TestGateway
  const config = (extraRoute = ''): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:0
  trusted_certificates: ${pki.ca.certFile}
  listen:
    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
services:
  - name: echo
    url: ${up.url}
    routes:
      - name: api
        paths: [/api]
        plugins:
          - name: openid-connect
            config:
              issuer: ${idp.issuer}
              proof_of_possession_mtls: strict
${extraRoute}`

  beforeAll(async () => {
    idp = await startIdp({
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      clientCaPem: pki.ca.certPem,
      clients: [{ client_id: 'client1', token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: 'CN=client1,O=Example Org' }],
    })
    await idp.stop()
    gw = await startGateway(config())
  })
  afterAll(async () => {
    await gw?.close()
    await idp?.close()
  })

  it('/status/ready is 503 while the strict route has never reached its IdP, /status is 200; ready flips to 200 once the IdP is up', async () => {
    const live = await get(`${gw.adminUrl}/status`)
    expect(live.status).toBe(200)
    expect(live.json).toMatchObject({ status: 'ok', ready: false })
    const ready = await get(`${gw.adminUrl}/status/ready`)
    expect(ready.status).toBe(503)
    expect(ready.json.reasons).toEqual(['openid-connect at services[0].routes[0].plugins[0] is not ready'])

    await idp.start()
    await waitFor('readiness', async () => (await get(`${gw.adminUrl}/status/ready`)).status === 200 ? true : undefined, 20_000)
    expect((await get(`${gw.adminUrl}/status`)).json).toMatchObject({ status: 'ok', ready: true })
  })

  it('a reload while the IdP is down keeps the route verifying tokens and the gateway ready (keys carried over)', async () => {
    const token = (await idp.token({ clientId: 'client1', certPem: pki.client1.certPem, keyPem: pki.client1.keyPem })).access_token
    const call = async (path = '/api'): Promise<number> => {
      const c = await tlsTo(gw.port(), pki.client1)
      try { return (await c.request('GET', path, { authorization: `Bearer ${token}` })).status } finally { c.close() }
    }
    expect(await call()).toBe(200)
    await idp.stop()
    try {
      const r = await request(`${gw.adminUrl}/config`, { method: 'POST', body: config('      - { name: other, paths: [/other] }\n'), headers: { 'content-type': 'application/yaml' } })
      expect(r.statusCode).toBe(200)
      await r.body.dump()
      expect(await call('/other')).toBe(200)
      // a new plugin instance, a cold token cache, no IdP: the keys it inherited verify the token
      expect(await call()).toBe(200)
      expect((await get(`${gw.adminUrl}/status/ready`)).status).toBe(200)
      // and the binding is still enforced: client2 with client1's token
      const c2 = await tlsTo(gw.port(), pki.client2)
      expect((await c2.request('GET', '/api', { authorization: `Bearer ${token}` })).status).toBe(401)
      c2.close()
    } finally {
      await idp.start()
    }
  })
})

describe('certbound start, a real process: signals', () => {
  let proc: CertboundProcess | undefined
  let dir: string
  let port: number
  let adminPort: number
  const config = (routes: string[]): string => `_format_version: "3.0"
gateway:
  admin_listen: 127.0.0.1:${adminPort}
  listen:
    - address: 127.0.0.1:${port}
  limits:
    drain_timeout: 5000
services:
  - name: echo
    url: ${up.url}
    routes:
${routes.map(r => `      - name: ${r}\n        paths: [/${r}]\n`).join('')}`

  beforeAll(async () => {
    await ensureDist()
    dir = pki.dir
    port = await freePort()
    adminPort = await freePort()
  }, 180_000)
  afterAll(async () => { await proc?.kill() })

  async function boot (args: string[]): Promise<CertboundProcess> {
    const file = join(dir, 'signals.yml')
    writeFileSync(file, config(['a']))
    const p = startCertbound(file, args)
    await waitFor('the admin listener', async () => (await get(`http://127.0.0.1:${adminPort}/status/ready`)).status === 200 ? true : undefined)
    return p
  }

  it('SIGHUP re-reads the file (--no-watch): it undoes a POST /config; an invalid file changes nothing', async () => {
    proc = await boot(['--no-watch'])
    const file = join(dir, 'signals.yml')
    const base = `http://127.0.0.1:${port}`
    const posted = await request(`http://127.0.0.1:${adminPort}/config`, { method: 'POST', body: config(['posted']), headers: { 'content-type': 'application/yaml' } })
    expect(posted.statusCode).toBe(200)
    await posted.body.dump()
    expect((await get(`${base}/posted`)).status).toBe(200)
    expect((await get(`${base}/a`)).status).toBe(404)

    writeFileSync(file, config(['b']))
    await new Promise(r => setTimeout(r, 600)) // longer than the watch debounce: nothing must happen
    expect((await get(`${base}/posted`)).status).toBe(200)
    proc.proc.kill('SIGHUP')
    await waitFor('route /b after SIGHUP', async () => (await get(`${base}/b`)).status === 200 ? true : undefined)
    expect((await get(`${base}/posted`)).status).toBe(404)

    writeFileSync(file, config(['c']).replace('paths: [/c]', 'paths: /c'))
    proc.proc.kill('SIGHUP')
    const refused = await waitFor('the refusal in the log', () => proc!.logs.find(l => l.msg === 'config reload refused; the running config is unchanged'))
    expect(refused.diagnostics).toEqual([expect.stringMatching(/^signals\.yml:\d+:\d+ CB_CFG_TYPE services\[0\]\.routes\[0\]\.paths/)])
    expect((await get(`${base}/b`)).status).toBe(200)
    proc.proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
  }, 30_000)

  it('SIGTERM: stops accepting, the in-flight request completes with 200, pools close, exit 0', async () => {
    proc = await boot([])
    const seen = up.requests.length
    up.handler = (_req, res) => { setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('slow answer') }, 1500) }
    try {
      const inflight = request(`http://127.0.0.1:${port}/a/slow`).then(async r => ({ status: r.statusCode, body: await r.body.text() }))
      await waitFor('the request at the upstream', () => up.requests.length > seen ? true : undefined)
      const t0 = Date.now()
      proc.proc.kill('SIGTERM')
      // the listener is closed at once: a new connection is refused while the request is still in flight
      await waitFor('connections refused', () => new Promise<true | undefined>((res) => {
        const s = connect(port, '127.0.0.1')
        s.once('connect', () => { s.destroy(); res(undefined) })
        s.once('error', (e: NodeJS.ErrnoException) => res(e.code === 'ECONNREFUSED' ? true : undefined))
      }), 1000)
      expect(await inflight).toEqual({ status: 200, body: 'slow answer' })
      expect(await proc.exited).toBe(0)
      expect(Date.now() - t0).toBeLessThan(5000)
      expect(proc.logs.map(l => l.msg)).toEqual(expect.arrayContaining(['stopping: draining in-flight requests', 'certbound stopped']))
    } finally {
      up.handler = undefined
    }
  }, 30_000)
})
