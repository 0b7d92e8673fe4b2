import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, type JsonWebKey as NodeJwk } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { calculateJwkThumbprint, type JSONWebKeySet, type JWK } from 'jose'
import { readJsonFile, writeFileAtomic } from './atomic-file.js'

export type SigningAlg = 'ES256' | 'EdDSA' | 'RS256'

/** One signing key: private half for signing, public JWK for the JWKS. */
export interface SigningKey {
  /** RFC 7638 JWK thumbprint of the public key. */
  readonly kid: string
  readonly alg: SigningAlg
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  readonly publicJwk: Readonly<JWK>
  /** Seconds since the epoch; the newest key signs. 0 for PEM keys (their order decides). */
  readonly createdAt: number
}

/** The keys of a server: one signs, all verify and publish. Frozen at load. */
export interface KeySet {
  readonly signing: SigningKey
  readonly keys: readonly SigningKey[]
  readonly byKid: ReadonlyMap<string, SigningKey>
  readonly jwks: Readonly<JSONWebKeySet>
}

/** A key file/store problem, reported at the config key (path inside the section) that names the file. */
export class KeyConfigError extends Error {
  constructor (readonly path: ReadonlyArray<string | number>, message: string, readonly code = 'CB_CFG_INVALID') {
    super(message)
    this.name = 'KeyConfigError'
  }
}

/** The JWS algorithm a key can sign with; undefined for unsupported keys (other curves, small RSA). */
export function algForKey (key: KeyObject): SigningAlg | undefined {
  const d = key.asymmetricKeyDetails
  switch (key.asymmetricKeyType) {
    case 'ec': return d?.namedCurve === 'prime256v1' || d?.namedCurve === 'P-256' ? 'ES256' : undefined
    case 'ed25519': return 'EdDSA'
    case 'rsa': return (d?.modulusLength ?? 0) >= 2048 ? 'RS256' : undefined
    default: return undefined
  }
}

async function describeKey (privateKey: KeyObject, createdAt: number, where: ReadonlyArray<string | number>): Promise<SigningKey> {
  const alg = algForKey(privateKey)
  if (alg === undefined) {
    throw new KeyConfigError(where, `unsupported signing key (${privateKey.asymmetricKeyType ?? privateKey.type}${privateKey.asymmetricKeyDetails?.namedCurve !== undefined ? ' ' + privateKey.asymmetricKeyDetails.namedCurve : ''}): use EC P-256 (ES256), Ed25519 (EdDSA) or RSA ≥ 2048 bits (RS256)`)
  }
  const publicKey = createPublicKey(privateKey)
  const jwk = publicKey.export({ format: 'jwk' }) as JWK
  const kid = await calculateJwkThumbprint(jwk, 'sha256')
  const publicJwk = Object.freeze({ ...jwk, kid, alg, use: 'sig' })
  return Object.freeze({ kid, alg, privateKey, publicKey, publicJwk, createdAt })
}

function keySet (keys: SigningKey[], signing: SigningKey): KeySet {
  const byKid = new Map<string, SigningKey>()
  for (const k of keys) byKid.set(k.kid, k)
  return Object.freeze({
    signing,
    keys: Object.freeze([...byKid.values()]),
    byKid,
    jwks: Object.freeze({ keys: [...byKid.values()].map(k => ({ ...k.publicJwk })) }),
  })
}

/** Keys from PEM files: the first signs, all publish. */
export async function loadPemKeys (files: ReadonlyArray<{ file: string, where: ReadonlyArray<string | number> }>, expectAlg: SigningAlg | undefined): Promise<KeySet> {
  const keys: SigningKey[] = []
  for (const { file, where } of files) {
    let pk: KeyObject
    try {
      pk = createPrivateKey(readFileSync(file))
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      throw new KeyConfigError(where, code !== undefined && code.startsWith('E') && !code.startsWith('ERR_')
        ? `cannot read ${file}: ${code} (paths are resolved relative to the config file)`
        : `${file} is not a readable private key (PEM PKCS#8, SEC1 or PKCS#1): ${(e as Error).message}`, code !== undefined && !code.startsWith('ERR_') ? 'CB_CFG_FILE' : 'CB_CFG_PEM')
    }
    keys.push(await describeKey(pk, 0, where))
  }
  const signing = keys[0]
  if (expectAlg !== undefined && signing.alg !== expectAlg) {
    throw new KeyConfigError(files[0].where, `signing_alg is ${expectAlg} but the signing key is a ${signing.alg} key`)
  }
  return keySet(keys, signing)
}

export interface StoredKey { created_at: number, jwk: NodeJwk }
export interface StoreFile { keys: StoredKey[] }

function generate (alg: SigningAlg): KeyObject {
  switch (alg) {
    case 'ES256': return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    case 'EdDSA': return generateKeyPairSync('ed25519').privateKey
    case 'RS256': return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  }
}

export function storedKey (alg: SigningAlg, createdAt = Math.floor(Date.now() / 1000)): StoredKey {
  return { created_at: createdAt, jwk: generate(alg).export({ format: 'jwk' }) }
}

async function readStore (file: string): Promise<StoreFile | undefined> {
  const raw = await readJsonFile(file)
  if (raw === undefined) return undefined
  const keys = (raw as { keys?: unknown }).keys
  if (!Array.isArray(keys) || keys.length === 0) throw new Error(`${file}: expected {"keys": [{"created_at": <seconds>, "jwk": {...}}]} with at least one key`)
  for (const k of keys as unknown[]) {
    const o = k as Partial<StoredKey> | null
    if (o === null || typeof o !== 'object' || typeof o.created_at !== 'number' || o.jwk === null || typeof o.jwk !== 'object' || typeof o.jwk.d !== 'string') {
      throw new Error(`${file}: every key needs created_at (seconds) and a private jwk`)
    }
  }
  return { keys: keys as StoredKey[] }
}

/**
 * Open a key store, creating it with one new key on first start (mode 0600, exclusive create, so concurrent
 * workers agree on one key). The newest key (by created_at) signs; every key stays published.
 * `onInsecureMode` is told when the file is readable by group or others.
 */
export async function openKeyStore (file: string, alg: SigningAlg, onInsecureMode?: (mode: number) => void): Promise<KeySet> {
  let store = await readStore(file)
  if (store === undefined) {
    const fresh: StoreFile = { keys: [storedKey(alg)] }
    try {
      await writeFileAtomic(file, JSON.stringify(fresh, null, 2) + '\n', { exclusive: true })
      store = fresh
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      store = await readStore(file)
      if (store === undefined) throw err
    }
  }
  const mode = statSync(file).mode & 0o777
  if ((mode & 0o077) !== 0) onInsecureMode?.(mode)
  return await keysFromStored(store.keys, file)
}

/** A key set from stored private JWKs: the newest (by created_at) signs, every key publishes. */
export async function keysFromStored (stored: readonly StoredKey[], where: string): Promise<KeySet> {
  const keys: SigningKey[] = []
  for (const [i, k] of stored.entries()) {
    let pk: KeyObject
    try { pk = createPrivateKey({ key: k.jwk, format: 'jwk' }) } catch (e) { throw new Error(`${where}: key ${i + 1} is not a valid private JWK: ${(e as Error).message}`) }
    keys.push(await describeKey(pk, k.created_at, ['key_store']))
  }
  let signing = keys[0]
  for (const k of keys) if (k.createdAt > signing.createdAt) signing = k
  return keySet(keys, signing)
}

/**
 * Add a new signing key to a key store (creating the store if needed), of `alg` or else of the newest key's
 * algorithm. Running servers pick it up on their next start or reload; it signs from then on while the older
 * keys stay published, so tokens they signed keep verifying. Drop old entries from the file once their tokens have expired (after the longest access_token_ttl).
 * Returns the new key's kid.
 */
export async function rotateKey (file: string, opts: { alg?: SigningAlg } = {}): Promise<string> {
  const store = await readStore(file) ?? { keys: [] }
  let newest: StoredKey | undefined
  for (const k of store.keys) if (newest === undefined || k.created_at > newest.created_at) newest = k
  // default: the algorithm of the key being replaced, so verifiers that pin an algorithm keep working
  const alg = opts.alg ?? (newest === undefined ? undefined : algForKey(createPrivateKey({ key: newest.jwk, format: 'jwk' }))) ?? 'ES256'
  // created_at has one-second resolution: keep it strictly increasing so "newest signs" is unambiguous
  const key = storedKey(alg, Math.max(Math.floor(Date.now() / 1000), (newest?.created_at ?? 0) + 1))
  store.keys.push(key)
  await writeFileAtomic(file, JSON.stringify(store, null, 2) + '\n')
  const described = await describeKey(createPrivateKey({ key: key.jwk, format: 'jwk' }), key.created_at, ['key_store'])
  return described.kid
}

/** Keys that live only as long as the process (no key_store, no state_dir): tokens die with it. */
export async function ephemeralKeys (alg: SigningAlg): Promise<KeySet> {
  const k = await describeKey(generate(alg), Math.floor(Date.now() / 1000), ['signing_alg'])
  return keySet([k], k)
}
