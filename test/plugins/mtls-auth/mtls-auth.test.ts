import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { createHash } from 'node:crypto'
import { Agent } from 'node:https'
import { utimesSync, writeFileSync } from 'node:fs'
import plugin from '../../../plugins/mtls-auth/index.js'
import { schema } from '../../../plugins/mtls-auth/schema.js'
import { PluginConfigError, type PluginDeps, type PluginInstance } from '../../../src/pipeline/types.js'
import { createMtlsPki, makeCrl, type Issued, type MtlsPki } from '../../unit/helpers/mtls-pki.js'
import { startHarness, testDeps, type Harness } from '../../unit/helpers/plugin-harness.js'

let pki: MtlsPki
let deps: PluginDeps
const open: Array<{ close (): Promise<void> }> = []

beforeAll(async () => {
  pki = await createMtlsPki()
  pki.write('ca.pem', pki.root.certPem)
  pki.write('intermediate.pem', pki.intermediate.certPem)
  deps = testDeps(pki.dir, [pki.root.certPem])
})
afterAll(async () => {
  for (const o of open.reverse()) await o.close()
  await deps.http.close()
  pki.cleanup()
})

async function instance (config: Record<string, unknown>): Promise<PluginInstance> {
  const inst = await plugin.create(schema.parse(config), deps)
  open.push({ close: () => inst.close?.() ?? Promise.resolve() })
  return inst
}

async function serve (config: Record<string, unknown>): Promise<Harness> {
  const h = await startHarness(await instance(config), { certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem })
  open.push(h)
  return h
}

const as = (c: Issued, chain = '') => ({ certPem: c.certPem + chain, keyPem: c.keyPem })

describe('mtls-auth: config', () => {
  it('has Kong\'s defaults and accepts Kong\'s harmless keys', () => {
    const c = schema.parse({ ca_certificates: ['ca.pem'], skip_consumer_lookup: true, consumer_by: ['username'], authenticated_group_by: 'DN', cache_ttl: 10, http_timeout: 1, send_ca_dn: true })
    expect(c).toMatchObject({ allow_partial_chain: false, revocation_check_mode: 'IGNORE_CA_ERROR', crl_files: [], error_response_code: 401, cert_cache_ttl: 60_000 })
  })

  it('rejects unknown keys and bad header names', () => {
    expect(schema.safeParse({ ca_certificates: ['ca.pem'], anonymous: 'x' }).success).toBe(false)
    expect(schema.safeParse({ ca_certificates: ['ca.pem'], upstream_cert_header: 'X Client' }).success).toBe(false)
    expect(schema.safeParse({ ca_certificates: ['ca.pem'], upstream_cert_header: 'Host' }).success).toBe(false)
    expect(schema.safeParse({ ca_certificates: [] }).success).toBe(false)
    expect(schema.safeParse({}).success).toBe(true)
  })

  it('reports an unreadable or malformed CA file at its index', async () => {
    pki.write('garbage.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
    pki.write('empty.pem', 'nothing')
    for (const [files, idx] of [[['ca.pem', 'missing.pem'], 1], [['garbage.pem'], 0], [['empty.pem'], 0]] as const) {
      const err = await Promise.resolve().then(() => plugin.create(schema.parse({ ca_certificates: files }), deps)).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(PluginConfigError)
      expect((err as PluginConfigError).path).toEqual(['ca_certificates', idx])
    }
  })

  it('STRICT needs ca_certificates (responses are verified against the issuer); a bad regex or CRL is a config error', async () => {
    const strict = await Promise.resolve().then(() => plugin.create(schema.parse({ revocation_check_mode: 'STRICT' }), deps)).catch((e: unknown) => e)
    expect((strict as PluginConfigError).path).toEqual(['revocation_check_mode'])
    const regex = await Promise.resolve().then(() => plugin.create(schema.parse({ ca_certificates: ['ca.pem'], subject_dn: '(' }), deps)).catch((e: unknown) => e)
    expect((regex as PluginConfigError).path).toEqual(['subject_dn'])
    pki.write('other.crl', (await makeCrl(pki.otherRoot, [])).pem)
    const crl = await Promise.resolve().then(() => plugin.create(schema.parse({ ca_certificates: ['ca.pem'], crl_files: ['other.crl'] }), deps)).catch((e: unknown) => e)
    expect((crl as PluginConfigError).path).toEqual(['crl_files', 0])
  })

  it('requests a client certificate and declares every header it sets', async () => {
    const inst = await instance({ ca_certificates: ['ca.pem'], upstream_cert_header: 'X-Client-Cert', upstream_cert_cn_header: 'X-Client-CN' })
    expect(inst.requestClientCertificate).toBe(true)
    expect(inst.identityHeaders).toEqual(['x-client-cert', 'x-client-cn'])
  })
})

describe('mtls-auth: Kong\'s answers', () => {
  let h: Harness
  beforeAll(async () => { h = await serve({ ca_certificates: ['ca.pem'] }) })

  it('no certificate → 401 "No required TLS certificate was sent"', async () => {
    const a = await h.send()
    expect(a.status).toBe(401)
    expect(a.body).toMatchObject({ code: 'CB_ERR_CERT_MISSING', message: 'No required TLS certificate was sent' })
  })

  it('a certificate from the trusted CA passes and is available to later plugins', async () => {
    const a = await h.send(as(pki.client1))
    expect(a.status).toBe(200)
    const verified = h.contexts[h.contexts.length - 1].clientCertificate
    expect(verified?.certificate.commonName).toBe('client1')
    expect(verified?.chain).toHaveLength(2)
  })

  for (const [label, cert, reason] of [
    ['another CA (same subject)', 'stranger', 'untrusted'],
    ['expired', 'expired', 'expired'],
    ['not yet valid', 'notYetValid', 'not_yet_valid'],
    ['serverAuth-only extendedKeyUsage', 'serverOnly', 'bad_purpose'],
  ] as const) {
    it(`${label} → 401 "TLS certificate failed verification", reason ${reason} in the log detail`, async () => {
      const a = await h.send(as(pki[cert]))
      expect(a.status).toBe(401)
      expect(a.body).toMatchObject({ code: 'CB_ERR_CERT_INVALID', message: 'TLS certificate failed verification' })
      expect(a.body.detail).toMatch(new RegExp(`^${reason}:`))
    })
  }

  it('a certificate below an intermediate passes when the client sends the intermediate', async () => {
    expect((await h.send(as(pki.chained, pki.intermediate.certPem))).status).toBe(200)
  })

  it('verifies against its own ca_certificates, not the listener\'s CA', async () => {
    // the harness listener trusts pki.root; this plugin trusts only otherRoot
    pki.write('other-ca.pem', pki.otherRoot.certPem)
    const other = await serve({ ca_certificates: ['other-ca.pem'] })
    expect((await other.send(as(pki.client1))).status).toBe(401)
    expect((await other.send(as(pki.stranger))).status).toBe(200)
  })

  it('error_response_code (Callista) changes the status', async () => {
    const h403 = await serve({ ca_certificates: ['ca.pem'], error_response_code: 403 })
    expect((await h403.send()).status).toBe(403)
    expect((await h403.send(as(pki.stranger))).status).toBe(403)
  })
})

describe('mtls-auth without ca_certificates (Callista\'s configs): the listener\'s client_ca decides', () => {
  it('passes a certificate the listener verified, refuses one it did not', async () => {
    // the harness listener verifies against pki.root (client_certificate: request)
    const h = await serve({ upstream_cert_header: 'X-Client-Cert' })
    const ok = await h.send(as(pki.client1))
    expect(ok.status).toBe(200)
    expect(ok.upstream.get('x-client-cert')).toBe(encodeURIComponent(pki.client1.x509.toString()))
    const stranger = await h.send(as(pki.stranger))
    expect(stranger.status).toBe(401)
    expect(stranger.body.code).toBe('CB_ERR_CERT_INVALID')
    expect((await h.send()).body.code).toBe('CB_ERR_CERT_MISSING')
    // the listener verified expiry at the handshake as well
    expect((await h.send(as(pki.expired))).status).toBe(401)
  })

  it('still applies subject_dn', async () => {
    const h = await serve({ subject_dn: '.*O=Callista Enterprise AB,.*' })
    expect((await h.send(as(pki.client1))).status).toBe(200)
    expect((await h.send(as(pki.acme))).status).toBe(401)
  })

  it('crl_files need ca_certificates (a CRL is verified against its CA)', async () => {
    pki.write('lm.crl', (await makeCrl(pki.root, [])).pem)
    const err = await Promise.resolve().then(() => plugin.create(schema.parse({ crl_files: ['lm.crl'] }), deps)).catch((e: unknown) => e)
    expect((err as PluginConfigError).path).toEqual(['ca_certificates'])
  })
})

describe('mtls-auth: allow_partial_chain', () => {
  it('an intermediate alone in ca_certificates is enough only with allow_partial_chain', async () => {
    const strict = await serve({ ca_certificates: ['intermediate.pem'] })
    expect((await strict.send(as(pki.chained, pki.intermediate.certPem))).status).toBe(401)
    const partial = await serve({ ca_certificates: ['intermediate.pem'], allow_partial_chain: true })
    expect((await partial.send(as(pki.chained))).status).toBe(200)
    expect((await partial.send(as(pki.client1))).status).toBe(401)
  })
})

describe('mtls-auth: subject_dn (Keycloak x509.subjectdn regex)', () => {
  it('matches the RFC 4514 subject as a whole', async () => {
    const h = await serve({ ca_certificates: ['ca.pem'], subject_dn: '.*O=Callista Enterprise AB,.*' })
    expect((await h.send(as(pki.client1))).status).toBe(200)
    const acme = await h.send(as(pki.acme))
    expect(acme.status).toBe(401)
    expect(acme.body.detail).toMatch(/^subject_dn: subject "CN=client3,O=Acme,C=SE"/)
  })

  it('is anchored like Java\'s String.matches: a partial match is not enough', async () => {
    const h = await serve({ ca_certificates: ['ca.pem'], subject_dn: 'O=Callista Enterprise AB' })
    expect((await h.send(as(pki.client1))).status).toBe(401)
    const exact = await serve({ ca_certificates: ['ca.pem'], subject_dn: 'CN=client1,O=Callista Enterprise AB,C=SE' })
    expect((await exact.send(as(pki.client1))).status).toBe(200)
    expect((await exact.send(as(pki.client2))).status).toBe(401)
  })
})

describe('mtls-auth: revocation (CRL)', () => {
  it('STRICT refuses a revoked certificate and one whose issuer has no CRL', async () => {
    pki.write('root.crl', (await makeCrl(pki.root, [pki.client2.serial])).pem)
    const h = await serve({ ca_certificates: ['ca.pem'], revocation_check_mode: 'STRICT', crl_files: ['root.crl'] })
    expect((await h.send(as(pki.client1))).status).toBe(200)
    const revoked = await h.send(as(pki.client2))
    expect(revoked.status).toBe(401)
    expect(revoked.body.detail).toMatch(/^revoked:/)
    // chained's issuer (the intermediate) published no CRL here
    const unknown = await h.send(as(pki.chained, pki.intermediate.certPem))
    expect(unknown.status).toBe(401)
    expect(unknown.body.detail).toMatch(/^revocation_unknown:/)
  })

  it('IGNORE_CA_ERROR refuses revoked, accepts unknown', async () => {
    pki.write('root2.crl', (await makeCrl(pki.root, [pki.client2.serial])).pem)
    const h = await serve({ ca_certificates: ['ca.pem'], crl_files: ['root2.crl'] })
    expect((await h.send(as(pki.client2))).status).toBe(401)
    expect((await h.send(as(pki.chained, pki.intermediate.certPem))).status).toBe(200)
  })

  it('SKIP does not check', async () => {
    pki.write('root3.crl', (await makeCrl(pki.root, [pki.client2.serial])).pem)
    const h = await serve({ ca_certificates: ['ca.pem'], revocation_check_mode: 'SKIP', crl_files: ['root3.crl'] })
    expect((await h.send(as(pki.client2))).status).toBe(200)
  })

  it('a changed CRL file applies to a connection that is already open', async () => {
    const file = pki.write('live.crl', (await makeCrl(pki.root, [])).pem)
    const h = await serve({ ca_certificates: ['ca.pem'], crl_files: ['live.crl'], cert_cache_ttl: 1000 })
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: pki.client1.certPem, key: pki.client1.keyPem, ca: pki.root.certPem })
    try {
      expect((await h.send({ ...as(pki.client1), agent })).status).toBe(200)
      writeFileSync(file, (await makeCrl(pki.root, [pki.client1.serial])).pem)
      utimesSync(file, new Date(), new Date(Date.now() + 5000))
      let status = 200
      const deadline = Date.now() + 5000
      while (status === 200 && Date.now() < deadline) {
        await new Promise(r => setTimeout(r, 200))
        status = (await h.send({ ...as(pki.client1), agent })).status
      }
      expect(status).toBe(401)
      const peers = new Set(h.contexts.slice(-2).map(c => c.req.socket))
      expect(peers.size).toBe(1) // same connection throughout
    } finally { agent.destroy() }
  })
})

describe('mtls-auth: per-connection verification cache', () => {
  it('verifies once per certificate: requests on one connection, and new connections with the same certificate, share the verdict', async () => {
    const h = await serve({ ca_certificates: ['ca.pem'] })
    const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: pki.client1.certPem, key: pki.client1.keyPem, ca: pki.root.certPem })
    try {
      expect((await h.send({ ...as(pki.client1), agent })).status).toBe(200)
      expect((await h.send({ ...as(pki.client1), agent })).status).toBe(200)
      const [a, b] = h.contexts.slice(-2).map(c => c.clientCertificate)
      expect(a?.certificate).toBe(b?.certificate)
      expect(a?.chain).toBe(b?.chain) // the same frozen array: not re-verified
      // a new connection with the same (handshake-verified) certificate reuses the verdict: the parsed
      // certificate is cached by content in src/server/peer.ts, and the verdict on it
      expect((await h.send(as(pki.client1))).status).toBe(200)
      expect(h.contexts[h.contexts.length - 1].clientCertificate?.chain).toBe(a?.chain)
      // another certificate gets its own verification
      expect((await h.send(as(pki.client2))).status).toBe(200)
      expect(h.contexts[h.contexts.length - 1].clientCertificate?.chain).not.toBe(a?.chain)
    } finally { agent.destroy() }
  })

  it('TLS session resumption cannot bypass verification (nodejs/node#35317)', async () => {
    const h = await serve({ ca_certificates: ['ca.pem'] })
    const first = await h.send(as(pki.stranger))
    expect(first.status).toBe(401)
    const again = await h.send({ ...as(pki.stranger), session: first.session })
    expect(again.status).toBe(401)
    const ok = await h.send(as(pki.client1))
    expect(ok.status).toBe(200)
    const resumed = await h.send({ ...as(pki.client1), session: ok.session })
    const ctx = h.contexts[h.contexts.length - 1]
    // resumed or not, a pass needs a certificate that this plugin verified
    if (resumed.status === 200) expect(ctx.clientCertificate?.certificate.commonName).toBe('client1')
    else expect(resumed.body.code).toBe('CB_ERR_CERT_MISSING')
  })
})

describe('mtls-auth: Callista\'s upstream certificate headers', () => {
  it('sets every configured header in nginx\'s formats', async () => {
    const h = await serve({
      ca_certificates: ['ca.pem'],
      upstream_cert_header: 'X-Client-Cert',
      upstream_cert_fingerprint_header: 'X-Client-Cert-Fingerprint',
      upstream_cert_serial_header: 'X-Client-Cert-Serial',
      upstream_cert_s_dn_header: 'X-Client-Cert-S-DN',
      upstream_cert_i_dn_header: 'X-Client-Cert-I-DN',
      upstream_cert_cn_header: 'X-Client-CN',
      upstream_cert_org_header: 'X-Client-Org',
    })
    const a = await h.send(as(pki.client1))
    expect(a.status).toBe(200)
    const cert = a.upstream.get('x-client-cert')!
    // $ssl_client_escaped_cert: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) of the PEM
    expect(cert.startsWith('-----BEGIN%20CERTIFICATE-----%0A')).toBe(true)
    expect(cert.endsWith('%0A-----END%20CERTIFICATE-----%0A')).toBe(true)
    expect(cert).toMatch(/^[A-Za-z0-9\-._~%]+$/)
    expect(cert).not.toMatch(/[+/=\n ]/)
    expect(decodeURIComponent(cert)).toBe(pki.client1.x509.toString())
    expect(a.upstream.get('x-client-cert-fingerprint')).toBe(createHash('sha1').update(pki.client1.der).digest('hex'))
    expect(a.upstream.get('x-client-cert-fingerprint')).toBe(pki.client1.x509.fingerprint.replace(/:/g, '').toLowerCase())
    expect(a.upstream.get('x-client-cert-serial')).toBe(pki.client1.x509.serialNumber.toUpperCase())
    expect(a.upstream.get('x-client-cert-s-dn')).toBe('CN=client1,O=Callista Enterprise AB,C=SE')
    expect(a.upstream.get('x-client-cert-i-dn')).toBe('CN=Test Root CA,O=Callista Enterprise AB,C=SE')
    expect(a.upstream.get('x-client-cn')).toBe('client1')
    expect(a.upstream.get('x-client-org')).toBe('Callista Enterprise AB')
  })

  it('sets nothing upstream for a refused certificate', async () => {
    const h = await serve({ ca_certificates: ['ca.pem'], upstream_cert_header: 'X-Client-Cert' })
    const a = await h.send(as(pki.stranger))
    expect(a.status).toBe(401)
    expect(a.upstream.size).toBe(0)
  })
})
