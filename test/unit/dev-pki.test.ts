import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { createCa, createCrl, issueCert, loadIssuedCert, writeDevPki } from '../../src/pki/dev-pki.js'
import { createTestPki, type TestCert, type TestPki } from '../helpers/pki.js'

const OPENSSL = '/usr/bin/openssl'
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

/** Run openssl; failures come back as { ok: false } with the combined output, for asserting on. */
function openssl (args: string[], input?: Buffer): { ok: boolean, out: string, raw: Buffer } {
  try {
    const raw = execFileSync(OPENSSL, args, { input, stdio: 'pipe' })
    return { ok: true, out: raw.toString('utf8'), raw }
  } catch (err) {
    const e = err as { stdout?: Buffer, stderr?: Buffer }
    const raw = Buffer.concat([e.stdout ?? Buffer.alloc(0), e.stderr ?? Buffer.alloc(0)])
    return { ok: false, out: raw.toString('utf8'), raw }
  }
}

function mode (path: string): number {
  return statSync(path).mode & 0o777
}

describe('writeDevPki', () => {
  let tmp: string
  beforeAll(() => { tmp = mkdtempSync(join(tmpdir(), 'certbound-devpki-')) })
  afterAll(() => { rmSync(tmp, { recursive: true, force: true }) })

  it('writes ca, server, client1, client2 with key files 0600 and certificates 0644', async () => {
    const { dir, files } = await writeDevPki(join(tmp, 'fresh', 'certs'))
    expect(dir).toBe(join(tmp, 'fresh', 'certs'))
    expect(files).toEqual(['ca.crt', 'ca.key', 'server.crt', 'server.key', 'client1.crt', 'client1.key', 'client2.crt', 'client2.key'])
    for (const f of files) expect(mode(join(dir, f)), f).toBe(f.endsWith('.key') ? 0o600 : 0o644)
    for (const f of files.filter((n) => n.endsWith('.key'))) expect(readFileSync(join(dir, f), 'utf8')).toMatch(/^-----BEGIN PRIVATE[ ]KEY-----\n/)
  })

  it('gives each certificate the subject, SANs, EKU and P-256 key it should have', async () => {
    const { dir } = await writeDevPki(join(tmp, 'subjects'))
    const [ca, server, client1, client2] = ['ca', 'server', 'client1', 'client2'].map((n) => loadIssuedCert(readFileSync(join(dir, `${n}.crt`), 'utf8'), readFileSync(join(dir, `${n}.key`), 'utf8')))
    expect(ca.x509.ca).toBe(true)
    expect(server.x509.subject).toBe('O=certbound dev\nCN=localhost')
    expect(server.x509.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1')
    expect(server.x509.keyUsage).toEqual([EKU_SERVER_AUTH])
    expect(client1.x509.subject).toBe('O=Example Org\nCN=client1')
    expect(client2.x509.subject).toBe('O=Example Org\nCN=client2')
    for (const c of [client1, client2]) expect(c.x509.keyUsage).toEqual([EKU_CLIENT_AUTH])
    for (const c of [server, client1, client2]) {
      expect(c.x509.ca).toBe(false)
      expect(c.x509.checkIssued(ca.x509)).toBe(true)
      expect(c.x509.verify(ca.x509.publicKey)).toBe(true)
    }
    for (const c of [ca, server, client1, client2]) expect(c.x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
  })

  it('puts IP literals from hosts into IP SANs and the rest into DNS SANs', async () => {
    const { dir } = await writeDevPki(join(tmp, 'hosts'), { hosts: ['localhost', 'gateway.test', '127.0.0.1', '[::1]'] })
    const san = loadIssuedCert(readFileSync(join(dir, 'server.crt'), 'utf8'), readFileSync(join(dir, 'server.key'), 'utf8')).x509.subjectAltName
    expect(san).toMatch(/^DNS:localhost, DNS:gateway\.test, IP Address:127\.0\.0\.1, IP Address:(0:0:0:0:0:0:0:1|::1)$/)
  })

  it('reuses an existing CA and (re)creates only missing files', async () => {
    const { dir } = await writeDevPki(join(tmp, 'reuse'))
    const before = ['ca.crt', 'ca.key', 'server.crt', 'client1.crt'].map((f) => readFileSync(join(dir, f), 'utf8'))

    expect((await writeDevPki(dir)).files).toEqual([])
    rmSync(join(dir, 'client2.key'))
    expect((await writeDevPki(dir)).files).toEqual(['client2.crt', 'client2.key'])

    expect(['ca.crt', 'ca.key', 'server.crt', 'client1.crt'].map((f) => readFileSync(join(dir, f), 'utf8'))).toEqual(before)
    const ca = loadIssuedCert(readFileSync(join(dir, 'ca.crt'), 'utf8'), readFileSync(join(dir, 'ca.key'), 'utf8'))
    const client2 = loadIssuedCert(readFileSync(join(dir, 'client2.crt'), 'utf8'), readFileSync(join(dir, 'client2.key'), 'utf8'))
    expect(client2.x509.verify(ca.x509.publicKey)).toBe(true)
  })

  it('refuses to replace a ca.key that has no ca.crt', async () => {
    const { dir } = await writeDevPki(join(tmp, 'half'))
    const key = readFileSync(join(dir, 'ca.key'), 'utf8')
    rmSync(join(dir, 'ca.crt'))
    await expect(writeDevPki(dir)).rejects.toThrow(/refusing to replace a CA key/)
    expect(readFileSync(join(dir, 'ca.key'), 'utf8')).toBe(key)
  })

  it('passes openssl verify -CAfile ca.crt server.crt client1.crt client2.crt', async () => {
    const { dir } = await writeDevPki(join(tmp, 'openssl'))
    const r = openssl(['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'server.crt'), join(dir, 'client1.crt'), join(dir, 'client2.crt')])
    expect(r.ok, r.out).toBe(true)
    expect(r.out.trim().split('\n')).toEqual(['server.crt', 'client1.crt', 'client2.crt'].map((f) => `${join(dir, f)}: OK`))
  })
})

describe('createTestPki, checked by OpenSSL', () => {
  let pki: TestPki
  beforeAll(async () => { pki = await createTestPki({ fresh: true }) })
  afterAll(() => { pki.cleanup() })

  it('writes every entity into a fresh certbound-pki- temp dir', () => {
    expect(pki.dir.startsWith(join(tmpdir(), 'certbound-pki-'))).toBe(true)
    expect(pki.file('ca.crt')).toBe(pki.ca.certFile)
    expect(readFileSync(pki.client1.certFile, 'utf8')).toBe(pki.client1.certPem)
    expect(readFileSync(pki.chainClient.chainFile, 'utf8')).toBe(pki.chainClient.certPem + pki.intermediateCa.certPem)
  })

  it('encodes subjects most specific last in DER (RFC 4514 order reversed)', () => {
    expect(pki.client1.x509.subject).toBe('O=Example Org\nCN=client1')
    expect(pki.callistaClient.x509.subject).toBe('C=SE\nO=Callista Enterprise AB\nCN=iot-device-1')
    const r = openssl(['x509', '-in', pki.callistaClient.certFile, '-noout', '-subject', '-nameopt', 'RFC2253'])
    expect(r.out.trim()).toBe('subject=CN=iot-device-1,O=Callista Enterprise AB,C=SE')
    expect(pki.otherClient.x509.subject).toBe(pki.client1.x509.subject)
  })

  it('reads escaped RFC 4514 values', async () => {
    const c = await issueCert(pki.ca, { kind: 'client', subject: 'CN=Smith\\, John+UID=js, O=Caf\\C3\\A9 \\"Org\\"' })
    const r = openssl(['x509', '-noout', '-subject', '-nameopt', 'RFC2253,-esc_msb'], Buffer.from(c.certPem))
    // A multi-valued RDN is a SET: OpenSSL may print its members in either order
    expect(r.out.trim()).toMatch(/^subject=(CN=Smith\\, John\+UID=js|UID=js\+CN=Smith\\, John),O=Café \\"Org\\"$/)
  })

  it('uses random positive 16-byte serials', () => {
    const serials = [pki.client1, pki.client2, pki.server, pki.ca].map((c) => c.serialHex)
    for (const s of serials) expect(s).toMatch(/^[4-7][0-9A-F]{31}$/)
    expect(new Set(serials).size).toBe(serials.length)
    expect(pki.client1.serialHex).toBe(pki.client1.x509.serialNumber.toUpperCase())
  })

  it('issues leaves OpenSSL verifies against the root, and chains through the intermediate', () => {
    const leaves = [pki.server, pki.client1, pki.client2, pki.callistaClient, pki.rsaClient, pki.revokedClient].map((c) => c.certFile)
    const direct = openssl(['verify', '-CAfile', pki.ca.certFile, ...leaves])
    expect(direct.ok, direct.out).toBe(true)
    const chained = openssl(['verify', '-CAfile', pki.ca.certFile, '-untrusted', pki.intermediateCa.certFile, pki.chainClient.certFile])
    expect(chained.ok, chained.out).toBe(true)
    const foreign = openssl(['verify', '-CAfile', pki.ca.certFile, pki.otherClient.certFile])
    expect(foreign.ok).toBe(false)
  })

  it('makes the RSA client an RSA-2048 key with keyEncipherment, and the CA/intermediate CAs', () => {
    const text = openssl(['x509', '-in', pki.rsaClient.certFile, '-noout', '-text']).out
    expect(text).toContain('Public-Key: (2048 bit)')
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/)
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/)
    expect(text).toContain('TLS Web Client Authentication')
    expect(openssl(['x509', '-in', pki.intermediateCa.certFile, '-noout', '-text']).out).toMatch(/CA:TRUE, pathlen:0/)
    expect(openssl(['x509', '-in', pki.selfSigned.certFile, '-noout', '-issuer', '-subject']).out).toBe('issuer=O = Example Org, CN = self-signed-client\nsubject=O = Example Org, CN = self-signed-client\n')
  })

  it('RFC 5280 §5: OpenSSL parses the CRLs and revokes exactly the listed certificate', () => {
    const text = openssl(['crl', '-in', pki.crlFile, '-noout', '-text'])
    expect(text.ok, text.out).toBe(true)
    expect(text.out).toContain('Issuer: O = certbound test, CN = certbound Test Root CA')
    expect(text.out).toContain('X509v3 CRL Number')
    expect(text.out).toContain(`Serial Number: ${pki.revokedClient.serialHex}`)
    expect(openssl(['crl', '-in', pki.emptyCrlFile, '-noout', '-text']).out).toContain('No Revoked Certificates')
    const verify = (file: string, crl: string): boolean => openssl(['verify', '-crl_check', '-CAfile', pki.ca.certFile, '-CRLfile', crl, file]).ok
    expect(verify(pki.revokedClient.certFile, pki.crlFile)).toBe(false)
    expect(verify(pki.client1.certFile, pki.crlFile)).toBe(true)
    expect(verify(pki.revokedClient.certFile, pki.emptyCrlFile)).toBe(true)
  })

  it('createCrl refuses certificates another CA issued', async () => {
    await expect(createCrl(pki.ca, [pki.otherClient])).rejects.toThrow(TypeError)
  })

  it('RFC 8705 §3.1: thumbprint equals openssl x509 -outform der | openssl dgst -sha256 -binary | base64url', () => {
    for (const c of [pki.client1, pki.rsaClient, pki.selfSigned]) {
      const der = openssl(['x509', '-in', c.certFile, '-outform', 'der']).raw
      const digest = openssl(['dgst', '-sha256', '-binary'], der).raw
      expect(pki.thumbprint(c)).toBe(digest.toString('base64url'))
      expect(pki.thumbprint(c.x509)).toBe(pki.thumbprint(c))
    }
  })
})

/** What a node:tls server decided about a client. */
interface Verdict {
  /** The server emitted 'secureConnection' (with rejectUnauthorized, only for a verified client). */
  established: boolean
  authorizationError: string | null
  peerSubject: string | null
}

interface HandshakeOptions {
  client: { cert: string, key: string }
  ca: string
  crl?: string | string[]
  rejectUnauthorized: boolean
}

/** One real TLS handshake on 127.0.0.1:0; resolves with the server's verdict, after closing both ends. */
async function handshake (pki: TestPki, opts: HandshakeOptions): Promise<Verdict> {
  const server = tls.createServer({
    key: pki.server.keyPem,
    cert: pki.server.certPem,
    ca: opts.ca,
    crl: opts.crl,
    requestCert: true,
    rejectUnauthorized: opts.rejectUnauthorized,
  })
  const verdict = new Promise<Verdict>((resolve) => {
    server.once('secureConnection', function onSecureConnection (socket) {
      const err = socket.authorizationError as unknown
      resolve({ established: true, authorizationError: err === null || err === undefined ? null : String(err), peerSubject: socket.getPeerX509Certificate()?.subject ?? null })
      socket.end()
    })
    // With rejectUnauthorized, Node finishes the TLS handshake, then destroys the socket: this is all the server sees
    server.once('tlsClientError', function onTlsClientError () {
      resolve({ established: false, authorizationError: null, peerSubject: null })
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.ca.certPem, cert: opts.client.cert, key: opts.client.key })
  client.on('error', function ignoreClientError () { /* the server's verdict is what we assert */ })
  try {
    return await verdict
  } finally {
    client.destroy()
    server.close()
    await once(server, 'close')
  }
}

function creds (c: TestCert): { cert: string, key: string } {
  return { cert: c.certPem, key: c.keyPem }
}

describe('RFC 8705 §2.1: node:tls with requestCert + rejectUnauthorized + ca', () => {
  let pki: TestPki
  beforeAll(async () => { pki = await createTestPki() })
  afterAll(() => { pki.cleanup() })

  it('accepts client1, client2, the RSA client and the C=SE client', async () => {
    for (const [c, subject] of [[pki.client1, 'O=Example Org\nCN=client1'], [pki.client2, 'O=Example Org\nCN=client2'], [pki.rsaClient, 'O=Example Org\nCN=rsa-client'], [pki.callistaClient, 'C=SE\nO=Callista Enterprise AB\nCN=iot-device-1']] as const) {
      const v = await handshake(pki, { client: creds(c), ca: pki.ca.certPem, rejectUnauthorized: true })
      expect(v).toEqual({ established: true, authorizationError: null, peerSubject: subject })
    }
  })

  it.each([
    ['otherClient (look-alike subject, unrelated CA)', 'otherClient', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['expiredClient', 'expiredClient', 'CERT_HAS_EXPIRED'],
    ['notYetValidClient', 'notYetValidClient', 'CERT_NOT_YET_VALID'],
    ['selfSigned', 'selfSigned', 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  ] as const)('rejects %s', async (_label, key, code) => {
    const client = creds(pki[key])
    expect((await handshake(pki, { client, ca: pki.ca.certPem, rejectUnauthorized: true })).established).toBe(false)
    expect((await handshake(pki, { client, ca: pki.ca.certPem, rejectUnauthorized: false })).authorizationError).toBe(code)
  })

  it('with the crl option, rejects revokedClient and still accepts client1', async () => {
    const crl = readFileSync(pki.crlFile, 'utf8')
    const revoked = creds(pki.revokedClient)
    expect((await handshake(pki, { client: revoked, ca: pki.ca.certPem, crl, rejectUnauthorized: true })).established).toBe(false)
    expect((await handshake(pki, { client: revoked, ca: pki.ca.certPem, crl, rejectUnauthorized: false })).authorizationError).toBe('CERT_REVOKED')
    expect((await handshake(pki, { client: creds(pki.client1), ca: pki.ca.certPem, crl, rejectUnauthorized: true })).established).toBe(true)
    const empty = readFileSync(pki.emptyCrlFile, 'utf8')
    expect((await handshake(pki, { client: revoked, ca: pki.ca.certPem, crl: empty, rejectUnauthorized: true })).established).toBe(true)
  })

  it('verifies chainClient (leaf + intermediate sent) against the root alone', async () => {
    const chain = readFileSync(pki.chainClient.chainFile, 'utf8')
    const v = await handshake(pki, { client: { cert: chain, key: pki.chainClient.keyPem }, ca: pki.ca.certPem, rejectUnauthorized: true })
    expect(v).toEqual({ established: true, authorizationError: null, peerSubject: 'O=Example Org\nCN=chained' })
    // Without the intermediate the root cannot vouch for the leaf
    const leafOnly = await handshake(pki, { client: creds(pki.chainClient), ca: pki.ca.certPem, rejectUnauthorized: false })
    expect(leafOnly.authorizationError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  })

  // Node sets X509_V_FLAG_CRL_CHECK_ALL and reads one CRL per array element (only the first PEM block of a string)
  it('with the crl option, needs a CRL from every CA in the chain', async () => {
    const client = { cert: readFileSync(pki.chainClient.chainFile, 'utf8'), key: pki.chainClient.keyPem }
    const rootOnly = await handshake(pki, { client, ca: pki.ca.certPem, crl: readFileSync(pki.emptyCrlFile, 'utf8'), rejectUnauthorized: false })
    expect(rootOnly.authorizationError).toBe('UNABLE_TO_GET_CRL')
    const both = [readFileSync(pki.emptyCrlFile, 'utf8'), await createCrl(pki.intermediateCa, [])]
    expect((await handshake(pki, { client, ca: pki.ca.certPem, crl: both, rejectUnauthorized: true })).established).toBe(true)
  })

  it('serves a server certificate clients accept for localhost and 127.0.0.1', async () => {
    const server = tls.createServer({ key: pki.server.keyPem, cert: pki.server.certPem }, (s) => s.end())
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    try {
      for (const servername of ['localhost', undefined]) {
        // No servername: Node checks the IP SAN against the host we dialled
        const client = tls.connect({ host: '127.0.0.1', port, servername, ca: pki.ca.certPem })
        await once(client, 'secureConnect')
        expect(client.authorized).toBe(true)
        client.destroy()
      }
    } finally {
      server.close()
      await once(server, 'close')
    }
  })
})

describe('createCa / issueCert options', () => {
  it('rejects a validity period that ends before it starts', async () => {
    const ca = await createCa({ subject: 'CN=t' })
    await expect(issueCert(ca, { kind: 'client', subject: 'CN=x', notBefore: new Date(), notAfter: new Date(Date.now() - 1000) })).rejects.toThrow(TypeError)
  })

  it('gives a certificate asked only for a past notAfter a validity period that precedes it', async () => {
    const ca = await createCa({ subject: 'CN=t' })
    const notAfter = new Date(Date.now() - 86_400_000)
    const c = await issueCert(ca, { kind: 'client', subject: 'CN=old', notAfter })
    expect(new Date(c.x509.validTo).getTime()).toBe(Math.floor(notAfter.getTime() / 1000) * 1000)
    expect(new Date(c.x509.validFrom).getTime()).toBeLessThan(notAfter.getTime())
  })

  it('refuses to sign with a leaf', async () => {
    const ca = await createCa({ subject: 'CN=t' })
    const leaf = await issueCert(ca, { kind: 'client', subject: 'CN=leaf' })
    await expect(issueCert(leaf, { kind: 'client', subject: 'CN=x' })).rejects.toThrow(/not a CA/)
  })

  it('loads a CA whose key is SEC1 PEM and issues from it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-devpki-'))
    try {
      const ca = await createCa({ subject: 'CN=sec1, O=t' })
      writeFileSync(join(dir, 'ca.key'), ca.keyPem)
      const sec1 = openssl(['ec', '-in', join(dir, 'ca.key')]).out
      expect(sec1).toContain(`BEGIN EC ${'PRIVATE'} KEY`)
      const loaded = loadIssuedCert(ca.certPem, sec1)
      expect(loaded.keyPem).toBe(ca.keyPem)
      const leaf = await issueCert(loaded, { kind: 'server', subject: 'CN=s', dns: ['s.test'] })
      expect(leaf.x509.verify(ca.x509.publicKey)).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
