import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { writeFileSync, utimesSync } from 'node:fs'
import { CrlLoadError, CrlStore, normalizeSerial } from '../../src/auth/crl.js'
import { createMtlsPki, makeCrl, type MtlsPki } from './helpers/mtls-pki.js'

let pki: MtlsPki
beforeAll(async () => { pki = await createMtlsPki() })
afterAll(() => pki.cleanup())

describe('RFC 5280 §5 CRLs (CrlStore)', () => {
  it('answers revoked for a listed serial and good for others (PEM)', async () => {
    const crl = await makeCrl(pki.root, [pki.client2.serial])
    const file = pki.write('root.crl.pem', crl.pem)
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509], checkIntervalMs: 0 })
    try {
      expect(store.status(pki.client2.x509, pki.root.x509).status).toBe('revoked')
      expect(store.status(pki.client1.x509, pki.root.x509).status).toBe('good')
      expect(store.status(pki.client1.x509, pki.root.x509).until).toBeGreaterThan(Date.now())
    } finally { store.close() }
  })

  it('accepts the "CRL" PEM label some tools write instead of RFC 7468\'s "X509 CRL"', async () => {
    const crl = await makeCrl(pki.root, [pki.client2.serial])
    const file = pki.write('label.crl.pem', crl.pem.replace(/X509 CRL/g, 'CRL'))
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509], checkIntervalMs: 0 })
    expect(store.status(pki.client2.x509, pki.root.x509).status).toBe('revoked')
    store.close()
  })

  it('reads DER CRLs', async () => {
    const crl = await makeCrl(pki.root, [pki.client1.serial])
    const file = pki.write('root.crl.der', crl.der)
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509], checkIntervalMs: 0 })
    expect(store.status(pki.client1.x509, pki.root.x509).status).toBe('revoked')
    store.close()
  })

  it('answers unknown without a CRL for the issuer, and for a CRL past nextUpdate', async () => {
    const crl = await makeCrl(pki.root, [], { thisUpdate: new Date(Date.now() - 7200_000), nextUpdate: new Date(Date.now() - 3600_000) })
    const file = pki.write('stale.crl.pem', crl.pem)
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509, pki.intermediate.x509], checkIntervalMs: 0 })
    expect(store.status(pki.client1.x509, pki.root.x509)).toMatchObject({ status: 'unknown' })
    expect(store.status(pki.chained.x509, pki.intermediate.x509)).toMatchObject({ status: 'unknown' })
    store.close()
  })

  it('refuses a CRL not signed by a configured CA', async () => {
    const crl = await makeCrl(pki.otherRoot, [pki.client1.serial])
    const file = pki.write('other.crl.pem', crl.pem)
    const err = await CrlStore.load({ files: [pki.write('ok.crl.pem', (await makeCrl(pki.root, [])).pem), file], issuers: [pki.root.x509], checkIntervalMs: 0 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CrlLoadError)
    expect((err as CrlLoadError).index).toBe(1)
  })

  it('refuses an unreadable or malformed file, naming its index', async () => {
    const missing = await CrlStore.load({ files: [pki.dir + '/nope.crl'], issuers: [pki.root.x509], checkIntervalMs: 0 }).catch((e: unknown) => e)
    expect(missing).toMatchObject({ index: 0, message: expect.stringContaining('ENOENT') as unknown })
    const junk = await CrlStore.load({ files: [pki.write('junk.crl', 'not a crl')], issuers: [pki.root.x509], checkIntervalMs: 0 }).catch((e: unknown) => e)
    expect(junk).toBeInstanceOf(CrlLoadError)
  })

  it('reloads a changed file (refresh) and bumps the generation', async () => {
    const file = pki.write('reload.crl.pem', (await makeCrl(pki.root, [])).pem)
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509], checkIntervalMs: 0 })
    try {
      expect(store.status(pki.client1.x509, pki.root.x509).status).toBe('good')
      const g = store.generation
      expect(await store.refresh()).toBe(false) // unchanged: no reload
      writeFileSync(file, (await makeCrl(pki.root, [pki.client1.serial], { thisUpdate: new Date(Date.now() - 1000) })).pem)
      utimesSync(file, new Date(), new Date(Date.now() + 5000))
      expect(await store.refresh()).toBe(true)
      expect(store.generation).toBe(g + 1)
      expect(store.status(pki.client1.x509, pki.root.x509).status).toBe('revoked')
    } finally { store.close() }
  })

  it('reloads on its own timer, and keeps the old CRLs when the new file is broken', async () => {
    const file = pki.write('timer.crl.pem', (await makeCrl(pki.root, [])).pem)
    const store = await CrlStore.load({ files: [file], issuers: [pki.root.x509], checkIntervalMs: 25 })
    try {
      writeFileSync(file, '-----BEGIN X509 CRL-----\nhalf written')
      utimesSync(file, new Date(), new Date(Date.now() + 10_000))
      await new Promise(r => setTimeout(r, 120))
      expect(store.generation).toBe(1)
      expect(store.status(pki.client2.x509, pki.root.x509).status).toBe('good')
      writeFileSync(file, (await makeCrl(pki.root, [pki.client2.serial])).pem)
      utimesSync(file, new Date(), new Date(Date.now() + 20_000))
      const deadline = Date.now() + 3000
      while (store.generation < 2 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20))
      expect(store.status(pki.client2.x509, pki.root.x509).status).toBe('revoked')
    } finally { store.close() }
  })

  it('normalizes serial numbers', () => {
    expect(normalizeSerial('0a1b')).toBe('A1B')
    expect(normalizeSerial('00:0A:1B')).toBe('A1B')
    expect(normalizeSerial('00')).toBe('0')
  })
})
