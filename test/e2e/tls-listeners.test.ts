/**
 * TLS listeners (issue 2, "Listeners and TLS"): gateway.listen[].tls.client_certificate none | request | require
 * with a client certificate present, absent, untrusted or expired; TLS versions; chains; the TLS identity on
 * resumed sessions (TLS 1.2 session ids/tickets and TLS 1.3 tickets); and curl as users run it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { readFileSync } from 'node:fs'
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { curl } from '../helpers/curl.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'

interface EchoCert { subject: string, issuer: string, serial: string, x5t_s256: string, verified_by_listener: boolean }
interface Echo { request: { path: string, route: string }, tls: { protocol: string, resumed: boolean, client_certificate: EchoCert | null } | null }

interface TlsResult {
  /** HTTP status, undefined when no response came (handshake refused). */
  status: number | undefined
  echo: Echo | undefined
  error: string | undefined
  reused: boolean
  protocol: string | null
  session: Buffer | undefined
}

let pki: TestPki
let gw: TestGateway
/** gateway.listen index by client_certificate mode. */
const L = { none: 0, request: 1, require: 2, tls13only: 3 } as const

/**
 * One HTTP/1.1 request over a fresh node:tls connection (Connection: close). Never rejects: a refused handshake
 * comes back as { status: undefined, error }.
 */
function tlsGet (port: number, opts: { client?: TestCert, certFile?: string, session?: Buffer, tls?: ConnectionOptions } = {}): Promise<TlsResult> {
  return new Promise((resolve) => {
    const certFile = opts.certFile ?? opts.client?.certFile
    let session: Buffer | undefined
    let data = ''
    let error: string | undefined
    let settled = false
    // read while the TLS handle is alive: querying a closed TLSSocket can crash the process
    let reused = false
    let protocol: string | null = null
    const s: TLSSocket = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: readFileSync(pki.ca.certFile),
      cert: certFile === undefined ? undefined : readFileSync(certFile),
      key: opts.client === undefined ? undefined : readFileSync(opts.client.keyFile),
      session: opts.session,
      ...opts.tls,
    }, () => {
      reused = s.isSessionReused()
      protocol = s.getProtocol()
      s.write('GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    })
    s.setEncoding('utf8')
    s.on('session', (b: Buffer) => { session = b })
    s.on('data', (d: string) => { data += d })
    s.on('error', (e: Error) => { error = e.message })
    s.on('close', () => {
      if (settled) return
      settled = true
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data)
      const body = data.slice(data.indexOf('\r\n\r\n') + 4)
      resolve({
        status: m === null ? undefined : Number(m[1]),
        echo: m === null ? undefined : JSON.parse(body) as Echo,
        error,
        reused,
        protocol,
        session,
      })
    })
    s.setTimeout(5000, () => { error = 'timeout'; s.destroy() })
  })
}

beforeAll(async () => {
  pki = await createTestPki()
  const listener = (mode: string, extra = ''): string => `    - address: 127.0.0.1:0
      tls:
        cert: ${pki.server.certFile}
        key: ${pki.server.keyFile}
        client_ca: ${pki.ca.certFile}
        client_certificate: ${mode}
${extra}`
  gw = await startGateway(`_format_version: "3.0"
gateway:
  listen:
${listener('none')}${listener('request')}${listener('require')}${listener('request', '        min_version: TLSv1.3\n')}
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
})

afterAll(async () => {
  await gw?.close()
  pki?.cleanup()
})

describe('client_certificate: none', () => {
  it('does not ask: a client with a certificate completes the handshake and none is seen', async () => {
    const r = await tlsGet(gw.port(L.none), { client: pki.client1 })
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate).toBeNull()
  })

  it('a client without a certificate is served', async () => {
    const r = await tlsGet(gw.port(L.none))
    expect(r.status).toBe(200)
    expect(r.echo?.tls).toMatchObject({ client_certificate: null })
  })
})

describe('client_certificate: request (plugins decide)', () => {
  it('no certificate: handshake completes, no certificate seen', async () => {
    const r = await tlsGet(gw.port(L.request))
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate).toBeNull()
  })

  it('a certificate issued by client_ca: verified_by_listener true, subject and RFC 8705 x5t#S256', async () => {
    const r = await tlsGet(gw.port(L.request), { client: pki.client1 })
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate).toMatchObject({
      subject: 'CN=client1,O=Example Org',
      issuer: 'CN=certbound Test Root CA,O=certbound test',
      x5t_s256: pki.thumbprint(pki.client1),
      verified_by_listener: true,
    })
  })

  it('an untrusted look-alike (same subject, other CA): handshake completes, verified_by_listener false', async () => {
    const r = await tlsGet(gw.port(L.request), { client: pki.otherClient })
    expect(r.status).toBe(200)
    const c = r.echo?.tls?.client_certificate
    expect(c).toMatchObject({ subject: 'CN=client1,O=Example Org', issuer: 'CN=Other Dev Root CA,O=Other Org', verified_by_listener: false })
    expect(c?.x5t_s256).toBe(pki.thumbprint(pki.otherClient))
    expect(c?.x5t_s256).not.toBe(pki.thumbprint(pki.client1))
  })

  it.each([
    ['expired', () => pki.expiredClient, 'CN=expired,O=Example Org'],
    ['not yet valid', () => pki.notYetValidClient, 'CN=future,O=Example Org'],
  ])('an %s certificate: handshake completes, verified_by_listener false', async (_kind, cert, subject) => {
    const r = await tlsGet(gw.port(L.request), { client: cert() })
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate).toMatchObject({ subject, verified_by_listener: false })
  })

  it('a leaf sent with its intermediate verifies against a root-only client_ca', async () => {
    const r = await tlsGet(gw.port(L.request), { client: pki.chainClient, certFile: pki.chainClient.chainFile })
    expect(r.echo?.tls?.client_certificate).toMatchObject({ subject: 'CN=chained,O=Example Org', verified_by_listener: true, x5t_s256: pki.thumbprint(pki.chainClient) })
  })

  it('the same leaf without its intermediate does not verify', async () => {
    const r = await tlsGet(gw.port(L.request), { client: pki.chainClient })
    expect(r.echo?.tls?.client_certificate).toMatchObject({ subject: 'CN=chained,O=Example Org', verified_by_listener: false })
  })
})

describe('client_certificate: require', () => {
  it('a certificate issued by client_ca: served, verified', async () => {
    const r = await tlsGet(gw.port(L.require), { client: pki.client1 })
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate).toMatchObject({ subject: 'CN=client1,O=Example Org', verified_by_listener: true })
  })

  it('a chain (leaf + intermediate) verifies against the root-only client_ca', async () => {
    const r = await tlsGet(gw.port(L.require), { client: pki.chainClient, certFile: pki.chainClient.chainFile })
    expect(r.status).toBe(200)
    expect(r.echo?.tls?.client_certificate?.subject).toBe('CN=chained,O=Example Org')
  })

  it.each([
    ['no certificate', () => undefined],
    ['an untrusted certificate (other CA)', () => pki.otherClient],
    ['an expired certificate', () => pki.expiredClient],
    ['a not-yet-valid certificate', () => pki.notYetValidClient],
    ['a leaf without its intermediate', () => pki.chainClient],
  ])('%s: the handshake fails, no request is served', async (_what, cert) => {
    const before = await handshakeFailures()
    for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
      const r = await tlsGet(gw.port(L.require), { client: cert(), tls: { minVersion: v, maxVersion: v } })
      expect(r.status, v).toBeUndefined()
    }
    await expect.poll(handshakeFailures).toBeGreaterThanOrEqual(before + 2)
  })

  function handshakeFailures (): Promise<number> {
    return gw.gateway.metrics.registry.getSingleMetric('certbound_tls_client_cert_failures_total')!.get()
      .then(m => m.values.filter(v => v.labels.listener === `listen[${L.require}]`).reduce((a, v) => a + v.value, 0))
  }
})

describe('TLS versions', () => {
  it.each(['TLSv1.2', 'TLSv1.3'] as const)('%s works', async (v) => {
    const r = await tlsGet(gw.port(L.request), { client: pki.client1, tls: { minVersion: v, maxVersion: v } })
    expect(r.status).toBe(200)
    expect(r.protocol).toBe(v)
    expect(r.echo?.tls?.protocol).toBe(v)
  })

  it.each(['TLSv1', 'TLSv1.1'] as const)('%s is refused by the server (protocol_version alert)', async (v) => {
    // SECLEVEL=0 lets this client offer the old version, so the refusal we see is the gateway's
    const r = await tlsGet(gw.port(L.none), { tls: { minVersion: v, maxVersion: v, ciphers: 'DEFAULT@SECLEVEL=0' } })
    expect(r.status).toBeUndefined()
    expect(r.error).toMatch(/alert protocol version/i)
  })

  it('curl --tls-max 1.1 is refused', async () => {
    const r = await curl(['--tls-max', '1.1', '--cacert', pki.ca.certFile, `https://localhost:${gw.port(L.none)}/echo`])
    expect(r.exitCode).toBe(35)
    expect(r.stderr).toMatch(/alert protocol version/i)
  })

  it('min_version: TLSv1.3 refuses TLS 1.2', async () => {
    const r12 = await tlsGet(gw.port(L.tls13only), { tls: { maxVersion: 'TLSv1.2' } })
    expect(r12.status).toBeUndefined()
    const r13 = await tlsGet(gw.port(L.tls13only))
    expect(r13.protocol).toBe('TLSv1.3')
  })
})

describe('the TLS identity on resumed sessions', () => {
  for (const mode of ['request', 'require'] as const) {
    for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
      it(`${v}, client_certificate: ${mode}: the resumed session still carries the subject and x5t#S256`, async () => {
        const tls = { minVersion: v, maxVersion: v }
        const first = await tlsGet(gw.port(L[mode]), { client: pki.client1, tls })
        expect(first.status).toBe(200)
        expect(first.reused).toBe(false)
        expect(first.session).toBeDefined()
        const second = await tlsGet(gw.port(L[mode]), { client: pki.client1, session: first.session, tls })
        expect(second.status).toBe(200)
        expect(second.reused).toBe(true)
        expect(second.echo?.tls).toMatchObject({ protocol: v, resumed: true })
        expect(second.echo?.tls?.client_certificate).toEqual(first.echo?.tls?.client_certificate)
        expect(second.echo?.tls?.client_certificate).toMatchObject({
          subject: 'CN=client1,O=Example Org',
          x5t_s256: pki.thumbprint(pki.client1),
          verified_by_listener: true,
        })
      })
    }
  }

  it('an untrusted certificate stays unverified on resumption (client_certificate: request)', async () => {
    const first = await tlsGet(gw.port(L.request), { client: pki.otherClient })
    const second = await tlsGet(gw.port(L.request), { client: pki.otherClient, session: first.session })
    expect(second.reused).toBe(true)
    expect(second.echo?.tls?.client_certificate).toMatchObject({ x5t_s256: pki.thumbprint(pki.otherClient), verified_by_listener: false })
  })
})

describe('curl, as users run it', () => {
  it('curl --cert client1.crt --key client1.key --cacert ca.crt https://localhost:PORT/echo', async () => {
    const r = await curl(['--cert', pki.client1.certFile, '--key', pki.client1.keyFile, '--cacert', pki.ca.certFile, `https://localhost:${gw.port(L.require)}/echo`])
    expect(r.exitCode).toBe(0)
    expect(r.status).toBe(200)
    const echo = JSON.parse(r.body) as Echo
    expect(echo.tls?.client_certificate).toMatchObject({ subject: 'CN=client1,O=Example Org', x5t_s256: pki.thumbprint(pki.client1), verified_by_listener: true })
  })

  it('curl without --cert against client_certificate: require fails in TLS', async () => {
    const r = await curl(['--cacert', pki.ca.certFile, `https://localhost:${gw.port(L.require)}/echo`])
    expect(r.status).toBe(0)
    expect([35, 56]).toContain(r.exitCode)
  })

  it('curl with client2 on client_certificate: request sees client2', async () => {
    const r = await curl(['--cert', pki.client2.certFile, '--key', pki.client2.keyFile, '--cacert', pki.ca.certFile, `https://localhost:${gw.port(L.request)}/echo`])
    expect(r.status).toBe(200)
    expect((JSON.parse(r.body) as Echo).tls?.client_certificate).toMatchObject({ subject: 'CN=client2,O=Example Org', x5t_s256: pki.thumbprint(pki.client2) })
  })

  it('the server certificate verifies for localhost and 127.0.0.1 against the CA', async () => {
    for (const host of ['localhost', '127.0.0.1']) {
      const r = await curl(['--cacert', pki.ca.certFile, `https://${host}:${gw.port(L.none)}/echo`])
      expect(r.status, host).toBe(200)
    }
  })
})
