/**
 * A throwaway PKI for tests (STYLE.md: real TLS, made at test time). It is generated once per test run by the
 * global setup (test/helpers/pki-global-setup.ts: EC P-256 keys, one RSA-2048 client for the tests about RSA) and
 * each call writes it into a temp dir of its own, so a test may add or change files there; `fresh: true` (or no
 * global setup: bench, scripts) generates a new one. Every entity has `certFile` and `keyFile` in `dir`; call
 * `cleanup()` in afterAll.
 */
import { X509Certificate, createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCa, createCrl, issueCert, selfSignedClient, type IssuedCert } from '../../src/pki/dev-pki.js'

export interface TestCert extends IssuedCert {
  certFile: string
  keyFile: string
}

export interface TestChainCert extends TestCert {
  /** Leaf then intermediate, PEM: what a client sends so a server trusting only the root can build the path. */
  chainFile: string
}

export interface TestPki {
  /** A fresh temp dir (prefix `certbound-pki-`) holding every file below. */
  dir: string
  /** 'CN=certbound Test Root CA, O=certbound test'. */
  ca: TestCert
  /** CN=localhost; SAN DNS:localhost, IP:127.0.0.1, IP:::1; EKU serverAuth; issued by `ca`. */
  server: TestCert
  /** 'CN=client1, O=Example Org', issued by `ca`. */
  client1: TestCert
  /** 'CN=client2, O=Example Org', issued by `ca`. */
  client2: TestCert
  /** An unrelated root: 'CN=Other Dev Root CA, O=Other Org'. */
  otherCa: TestCert
  /** Issued by `otherCa` with client1's subject, 'CN=client1, O=Example Org': a look-alike. */
  otherClient: TestCert
  /** 'CN=expired, O=Example Org', issued by `ca`, notAfter yesterday. */
  expiredClient: TestCert
  /** 'CN=future, O=Example Org', issued by `ca`, notBefore tomorrow. */
  notYetValidClient: TestCert
  /** 'CN=certbound Test Intermediate CA, O=certbound test', signed by `ca`, pathLength 0. */
  intermediateCa: TestCert
  /** 'CN=chained, O=Example Org', issued by `intermediateCa`. */
  chainClient: TestChainCert
  /** 'CN=revoked, O=Example Org', issued by `ca` and listed in `crlFile`. */
  revokedClient: TestCert
  /** CRL of `ca` listing `revokedClient` (PEM "X509 CRL"). */
  crlFile: string
  /** CRL of `ca` listing nothing. */
  emptyCrlFile: string
  /** 'CN=self-signed-client, O=Example Org', self-signed (RFC 8705 §2.2). */
  selfSigned: TestCert
  /** 'CN=iot-device-1, O=Callista Enterprise AB, C=SE', issued by `ca`. */
  callistaClient: TestCert
  /** 'CN=rsa-client, O=Example Org', RSA-2048, issued by `ca`. */
  rsaClient: TestCert
  /** Absolute path of `name` inside `dir`. */
  file (name: string): string
  /** RFC 8705 §3.1 `x5t#S256`: base64url (no padding) SHA-256 of the certificate's DER. */
  thumbprint (cert: IssuedCert | X509Certificate): string
  /** Remove `dir` and everything in it. */
  cleanup (): void
}

const DAY_MS = 86_400_000

/** Where the global setup leaves the run's PKI (a JSON file of PEMs). */
export const SHARED_PKI_ENV = 'CERTBOUND_TEST_PKI'

/** The test PKI in a temp dir of its own: the run's shared one, or (`fresh`, or outside vitest) a new one. */
export async function createTestPki (opts: { fresh?: boolean } = {}): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-pki-'))
  try {
    const shared = process.env[SHARED_PKI_ENV]
    const material = opts.fresh !== true && shared !== undefined && existsSync(shared)
      ? fromJson(readFileSync(shared, 'utf8'))
      : await generatePki()
    return write(dir, material)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
}

const ENTITIES = ['ca', 'server', 'client1', 'client2', 'otherCa', 'otherClient', 'expiredClient', 'notYetValidClient', 'intermediateCa', 'chainClient', 'revokedClient', 'selfSigned', 'callistaClient', 'rsaClient'] as const
type Entity = typeof ENTITIES[number]

/** The PKI's certificates, keys and CRLs, before they are written anywhere. */
export interface PkiMaterial { certs: Record<Entity, IssuedCert>, crl: string, emptyCrl: string }

export function toJson (m: PkiMaterial): string {
  const certs: Record<string, { certPem: string, keyPem: string }> = {}
  for (const e of ENTITIES) certs[e] = { certPem: m.certs[e].certPem, keyPem: m.certs[e].keyPem }
  return JSON.stringify({ certs, crl: m.crl, emptyCrl: m.emptyCrl })
}

function fromJson (text: string): PkiMaterial {
  const j = JSON.parse(text) as { certs: Record<Entity, { certPem: string, keyPem: string }>, crl: string, emptyCrl: string }
  const certs = {} as Record<Entity, IssuedCert>
  for (const e of ENTITIES) {
    const x509 = new X509Certificate(j.certs[e].certPem)
    certs[e] = { certPem: j.certs[e].certPem, keyPem: j.certs[e].keyPem, x509, serialHex: x509.serialNumber }
  }
  return { certs, crl: j.crl, emptyCrl: j.emptyCrl }
}

/** Generate the PKI. Independent certificates are generated concurrently to keep this fast. */
export async function generatePki (): Promise<PkiMaterial> {
  const now = Date.now()
  const [ca, otherCa] = await Promise.all([
    createCa({ subject: 'CN=certbound Test Root CA, O=certbound test' }),
    createCa({ subject: 'CN=Other Dev Root CA, O=Other Org' }),
  ])
  const [server, client1, client2, otherClient, expiredClient, notYetValidClient, intermediateCa, revokedClient, selfSigned, callistaClient, rsaClient] = await Promise.all([
    issueCert(ca, { kind: 'server', subject: 'CN=localhost', dns: ['localhost'], ips: ['127.0.0.1', '::1'] }),
    issueCert(ca, { kind: 'client', subject: 'CN=client1, O=Example Org' }),
    issueCert(ca, { kind: 'client', subject: 'CN=client2, O=Example Org' }),
    issueCert(otherCa, { kind: 'client', subject: 'CN=client1, O=Example Org' }),
    issueCert(ca, { kind: 'client', subject: 'CN=expired, O=Example Org', notBefore: new Date(now - 30 * DAY_MS), notAfter: new Date(now - DAY_MS) }),
    issueCert(ca, { kind: 'client', subject: 'CN=future, O=Example Org', notBefore: new Date(now + DAY_MS), notAfter: new Date(now + 30 * DAY_MS) }),
    createCa({ subject: 'CN=certbound Test Intermediate CA, O=certbound test', issuer: ca }),
    issueCert(ca, { kind: 'client', subject: 'CN=revoked, O=Example Org' }),
    selfSignedClient({ subject: 'CN=self-signed-client, O=Example Org' }),
    issueCert(ca, { kind: 'client', subject: 'CN=iot-device-1, O=Callista Enterprise AB, C=SE' }),
    issueCert(ca, { kind: 'client', subject: 'CN=rsa-client, O=Example Org', keyAlg: 'RSA-2048' }),
  ])
  const [chainClient, crl, emptyCrl] = await Promise.all([
    issueCert(intermediateCa, { kind: 'client', subject: 'CN=chained, O=Example Org' }),
    createCrl(ca, [revokedClient]),
    createCrl(ca, []),
  ])
  return {
    certs: { ca, server, client1, client2, otherCa, otherClient, expiredClient, notYetValidClient, intermediateCa, chainClient, revokedClient, selfSigned, callistaClient, rsaClient },
    crl,
    emptyCrl,
  }
}

function write (dir: string, m: PkiMaterial): TestPki {
  const { ca, server, client1, client2, otherCa, otherClient, expiredClient, notYetValidClient, intermediateCa, chainClient, revokedClient, selfSigned, callistaClient, rsaClient } = m.certs
  const { crl, emptyCrl } = m
  const file = function file (name: string): string { return join(dir, name) }
  const save = function save (name: string, cert: IssuedCert): TestCert {
    const certFile = writeTestFile(file(`${name}.crt`), cert.certPem)
    const keyFile = writeTestFile(file(`${name}.key`), cert.keyPem, 0o600)
    return { ...cert, certFile, keyFile }
  }
  return {
    dir,
    ca: save('ca', ca),
    server: save('server', server),
    client1: save('client1', client1),
    client2: save('client2', client2),
    otherCa: save('other-ca', otherCa),
    otherClient: save('other-client', otherClient),
    expiredClient: save('expired-client', expiredClient),
    notYetValidClient: save('not-yet-valid-client', notYetValidClient),
    intermediateCa: save('intermediate-ca', intermediateCa),
    chainClient: { ...save('chain-client', chainClient), chainFile: writeTestFile(file('chain-client.chain.crt'), chainClient.certPem + intermediateCa.certPem) },
    revokedClient: save('revoked-client', revokedClient),
    crlFile: writeTestFile(file('crl.pem'), crl),
    emptyCrlFile: writeTestFile(file('empty-crl.pem'), emptyCrl),
    selfSigned: save('self-signed', selfSigned),
    callistaClient: save('callista-client', callistaClient),
    rsaClient: save('rsa-client', rsaClient),
    file,
    thumbprint: x5tS256,
    cleanup: function cleanup () { rmSync(dir, { recursive: true, force: true }) },
  }
}

function writeTestFile (path: string, data: string, mode = 0o644): string {
  writeFileSync(path, data, { mode })
  return path
}

/** Computed here, not imported from src/, so tests check the gateway against an independent oracle. */
function x5tS256 (cert: IssuedCert | X509Certificate): string {
  const der = cert instanceof X509Certificate ? cert.raw : cert.x509.raw
  return createHash('sha256').update(der).digest('base64url')
}
