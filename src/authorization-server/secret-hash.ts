import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/**
 * Client secret hashes for `client_secret_hash`, in the PHC string format used by passlib and others:
 * `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (salt and hash in base64 without padding). `ln` is log2(N).
 */

/** Parameters of newly created hashes: N = 2^15, r = 8 (32 MiB, tens of ms). */
const LN = 15
const R = 8
const P = 1
const SALT_BYTES = 16
const HASH_BYTES = 32
/** Bounds on parameters read from a config file, so a typo cannot make every token request cost seconds. */
const MAX_LN = 20
const MAX_R = 32
const MAX_P = 16

export interface SecretHash {
  readonly ln: number
  readonly r: number
  readonly p: number
  readonly salt: Buffer
  readonly hash: Buffer
}

/** Parse a `$scrypt$…` string; undefined if it is not one (or its parameters are out of bounds). */
export function parseSecretHash (s: string): SecretHash | undefined {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(s)
  if (m === null) return undefined
  const ln = Number(m[1]); const r = Number(m[2]); const p = Number(m[3])
  if (ln < 10 || ln > MAX_LN || r < 1 || r > MAX_R || p < 1 || p > MAX_P) return undefined
  const salt = Buffer.from(m[4], 'base64')
  const hash = Buffer.from(m[5], 'base64')
  if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined
  return { ln, r, p, salt, hash }
}

function scryptAsync (secret: string, salt: Buffer, keylen: number, o: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret.normalize('NFC'), salt, keylen, o, function scryptDone (err, key) {
      if (err !== null) reject(err)
      else resolve(key)
    })
  })
}

const opts = (ln: number, r: number, p: number): ScryptOptions => ({ N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 })

/** Hash a client secret for `client_secret_hash` (what `certbound hash-secret` prints). */
export async function hashSecret (secret: string): Promise<string> {
  if (typeof secret !== 'string' || secret === '') throw new TypeError('hashSecret: the secret must be a non-empty string')
  const salt = randomBytes(SALT_BYTES)
  const hash = await scryptAsync(secret, salt, HASH_BYTES, opts(LN, R, P))
  return `$scrypt$ln=${LN},r=${R},p=${P}$${salt.toString('base64').replace(/=+$/, '')}$${hash.toString('base64').replace(/=+$/, '')}`
}

/** Verify a secret against a hash from hashSecret, in constant time. False for a malformed hash. */
export async function verifySecret (secret: string, encoded: string | SecretHash): Promise<boolean> {
  const h = typeof encoded === 'string' ? parseSecretHash(encoded) : encoded
  if (h === undefined) return false
  const got = await scryptAsync(secret, h.salt, h.hash.length, opts(h.ln, h.r, h.p))
  return timingSafeEqual(got, h.hash)
}
