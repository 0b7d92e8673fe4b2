import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { connect, createServer, type TLSSocket, type SecureVersion } from 'node:tls'
import type { AddressInfo } from 'node:net'
import { peerDerFromSession } from '../../src/server/session-peer.js'
import { tlsIdentity, x5tS256 } from '../../src/server/peer.js'
import { createMtlsPki, type Issued, type MtlsPki } from './helpers/mtls-pki.js'

let pki: MtlsPki
beforeAll(async () => { pki = await createMtlsPki() })
afterAll(() => pki.cleanup())

interface Seen { session: Buffer | undefined, raw: Buffer | undefined, authorized: boolean, reused: boolean, x5t: string | null }

/** One real handshake against a server that requests (but does not require) a client certificate. */
async function handshake (version: SecureVersion, client: Issued | null, session?: Buffer): Promise<{ seen: Seen, session: Buffer | undefined }> {
  let seen: Seen | undefined
  const server = createServer({
    key: pki.server.keyPem, cert: pki.server.certPem, ca: pki.root.certPem,
    requestCert: true, rejectUnauthorized: false, minVersion: version, maxVersion: version,
    // a fixed ticket key so that a session from one server resumes on the next (TLS 1.2 ids live per server)
    ticketKeys: Buffer.alloc(48, 7),
  }, (s: TLSSocket) => {
    const sess = s.getSession()
    const raw = s.getPeerCertificate(false)?.raw as Buffer | undefined
    seen = { session: sess === undefined ? undefined : Buffer.from(sess), raw, authorized: s.authorized, reused: s.isSessionReused(), x5t: tlsIdentity(s)?.certificate?.x5tS256 ?? null }
    s.end('x')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  let clientSession: Buffer | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      const c = connect({
        port: (server.address() as AddressInfo).port, host: '127.0.0.1', ca: pki.root.certPem, servername: 'localhost',
        ...(client === null ? {} : { key: client.keyPem, cert: client.certPem }),
        minVersion: version, maxVersion: version, ...(session === undefined ? {} : { session }),
      })
      c.on('session', (b: Buffer) => { clientSession = b })
      c.on('error', reject)
      c.on('data', () => {})
      c.on('end', () => { c.end(); resolve() })
    })
  } finally {
    await new Promise(resolve => server.close(resolve))
  }
  if (seen === undefined) throw new Error('no connection seen')
  return { seen, session: clientSession }
}

describe('peerDerFromSession: the peer certificate from OpenSSL\'s serialised session', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: is byte for byte the certificate Node reports, and the identity's x5t#S256 is its hash`, async () => {
      const { seen } = await handshake(version, pki.client1)
      expect(seen.authorized).toBe(true)
      const der = peerDerFromSession(seen.session!)
      expect(der).not.toBeNull()
      expect(Buffer.from(der!).equals(pki.client1.der)).toBe(true)
      expect(Buffer.from(der!).equals(seen.raw!)).toBe(true)
      expect(seen.x5t).toBe(x5tS256(pki.client1.der))
    })

    it(`${version}: is null when the client sent no certificate`, async () => {
      const { seen } = await handshake(version, null)
      expect(seen.raw).toBeUndefined()
      expect(peerDerFromSession(seen.session!)).toBeNull()
    })

    it(`${version}: an unverified certificate is still the one the client sent (and is not served from the cache)`, async () => {
      const { seen } = await handshake(version, pki.stranger)
      expect(seen.authorized).toBe(false)
      expect(Buffer.from(peerDerFromSession(seen.session!)!).equals(pki.stranger.der)).toBe(true)
      expect(seen.x5t).toBe(x5tS256(pki.stranger.der))
    })
  }

  it('a resumed session carries the certificate of the handshake it resumes (TLS 1.2 ticket)', async () => {
    const first = await handshake('TLSv1.2', pki.client2)
    expect(first.session).toBeDefined()
    const again = await handshake('TLSv1.2', pki.client2, first.session)
    expect(again.seen.reused).toBe(true)
    const der = peerDerFromSession(again.seen.session!)
    expect(der === null ? null : Buffer.from(der).equals(pki.client2.der)).toBe(true)
    expect(again.seen.x5t).toBe(x5tS256(pki.client2.der))
  })

  it('two clients in a row are told apart (the cache is keyed by the certificate, not the connection)', async () => {
    const a = await handshake('TLSv1.3', pki.client1)
    const b = await handshake('TLSv1.3', pki.client2)
    const c = await handshake('TLSv1.3', pki.client1)
    expect([a.seen.x5t, b.seen.x5t, c.seen.x5t]).toEqual([x5tS256(pki.client1.der), x5tS256(pki.client2.der), x5tS256(pki.client1.der)])
  })

  it('never throws and never reads past the input: truncations, bit flips and random bytes', async () => {
    const { seen } = await handshake('TLSv1.3', pki.client1)
    const session = seen.session!
    for (let n = 0; n < session.length; n++) {
      const der = peerDerFromSession(session.subarray(0, n))
      // a prefix can only yield the certificate once the whole of it is there
      if (der !== null) expect(Buffer.from(der).equals(pki.client1.der)).toBe(true)
    }
    fc.assert(fc.property(fc.nat(session.length - 1), fc.integer({ min: 1, max: 255 }), (at, mask) => {
      const b = Buffer.from(session)
      b[at] ^= mask
      const der = peerDerFromSession(b)
      if (der !== null) expect(der.byteOffset + der.length).toBeLessThanOrEqual(b.byteOffset + b.length)
    }), { numRuns: 2000 })
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
      const der = peerDerFromSession(bytes)
      if (der !== null) expect(der[0]).toBe(0x30)
    }), { numRuns: 2000 })
  })
})
