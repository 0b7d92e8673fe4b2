import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import type { SecretBox } from './types.js'

/**
 * gateway.store.secret → AES-256-GCM (NIST SP 800-38D: 96-bit random IV, 128-bit tag). The key is derived with
 * HKDF-SHA256 (RFC 5869) so the configured text is never used as a key directly; the store key is the AAD, so a
 * value copied under another key does not open.
 */
export function createSecretBox (secret: string): SecretBox {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'certbound store', 'value encryption v1', 32))
  return Object.freeze({
    seal (plaintext: string, aad: string): string {
      const iv = randomBytes(12)
      const c = createCipheriv('aes-256-gcm', key, iv)
      c.setAAD(Buffer.from(aad, 'utf8'))
      const body = Buffer.concat([c.update(plaintext, 'utf8'), c.final()])
      return 'v1.' + Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url')
    },
    open (sealed: string, aad: string): string | undefined {
      if (!sealed.startsWith('v1.')) return undefined
      const raw = Buffer.from(sealed.slice(3), 'base64url')
      if (raw.length < 28) return undefined
      try {
        const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12))
        d.setAAD(Buffer.from(aad, 'utf8'))
        d.setAuthTag(raw.subarray(12, 28))
        return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString('utf8')
      } catch { return undefined }
    },
  })
}
