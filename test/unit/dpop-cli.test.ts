import { describe, it, expect, afterAll } from 'vitest'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { calculateJwkThumbprint, compactVerify, decodeProtectedHeader, EmbeddedJWK, type JWK } from 'jose'
import { dpopCommand } from '../../src/dpop-cli.js'

const dir = mkdtempSync(join(tmpdir(), 'certbound-dpop-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function run (...args: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await dpopCommand(args, s => { out += s + '\n' }, s => { err += s + '\n' })
  return { code, out: out.trim(), err }
}

describe('certbound dpop', () => {
  it('--new-key writes an EC P-256 key with mode 0600, prints its jkt, and never overwrites', async () => {
    const f = join(dir, 'k.pem')
    const r = await run('--new-key', f)
    expect(r.code).toBe(0)
    expect(statSync(f).mode & 0o777).toBe(0o600)
    const p = await run('--key', f, '--url', 'https://API.example.test:443/orders?x=1#y', '--token', 'tok')
    const h = decodeProtectedHeader(p.out)
    expect(h).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' })
    expect(await calculateJwkThumbprint(h.jwk as JWK)).toBe(r.out)
    const { payload } = await compactVerify(p.out, EmbeddedJWK)
    const claims = JSON.parse(Buffer.from(payload).toString()) as Record<string, unknown>
    expect(claims).toMatchObject({ htm: 'GET', htu: 'https://api.example.test/orders', ath: createHash('sha256').update('tok').digest('base64url') })
    expect((await run('--new-key', f)).code).toBe(1)
  })

  it('Ed25519 keys sign EdDSA proofs, RSA keys PS256; --method and --nonce are carried', async () => {
    const ed = join(dir, 'ed.pem')
    writeFileSync(ed, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }))
    const p = await run('--key', ed, '--url', 'https://a.test/t', '--method', 'post', '--nonce', 'n0nce')
    expect(decodeProtectedHeader(p.out).alg).toBe('EdDSA')
    expect(JSON.parse(Buffer.from(p.out.split('.')[1], 'base64url').toString())).toMatchObject({ htm: 'POST', nonce: 'n0nce' })
    const rsa = join(dir, 'rsa.pem')
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    expect(decodeProtectedHeader((await run('--key', rsa, '--url', 'https://a.test/')).out).alg).toBe('PS256')
    expect(decodeProtectedHeader((await run('--key', rsa, '--url', 'https://a.test/')).out).jwk).not.toHaveProperty('d')
  })

  it('missing --url (a usage error: exit 2), a relative URL or an unsupported key (exit 1): a message', async () => {
    const f = join(dir, 'k2.pem')
    await run('--new-key', f)
    expect((await run('--key', f)).code).toBe(2)
    expect((await run('--key', f, '--url', '/relative')).err).toMatch(/not an absolute/)
    const p384 = join(dir, 'p384.pem')
    writeFileSync(p384, generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    expect((await run('--key', p384, '--url', 'https://a.test/')).err).toMatch(/P-256, Ed25519 or RSA/)
  })
})
