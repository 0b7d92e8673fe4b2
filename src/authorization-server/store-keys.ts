import { hash } from 'node:crypto'
import type { StateStore } from '../store/types.js'
import { createPrivateKey } from 'node:crypto'
import { algForKey, KeyConfigError, keysFromStored, storedKey, type KeySet, type SigningAlg, type StoreFile } from './signing-keys.js'

/**
 * Signing keys generated into the shared store (no signing_keys, no key_store file): created once by whichever
 * worker or node gets there first (set-if-absent), then used by all, so a token issued by one validates at every
 * other. With the memory backend they live as long as the primary (a restart invalidates issued tokens: give
 * state_dir or key_store to keep them); with redis they live in Redis, sealed with gateway.store.secret (a private
 * key is never a value in the clear).
 */
/** No expiry in practice (a century), within every backend's TTL range. */
const FOREVER_MS = 100 * 365 * 86_400_000

function sealing (store: StateStore, issuer: string) {
  const key = 'as:signing-keys:' + hash('sha256', issuer, 'base64url')
  const box = store.secretBox
  if (box === undefined && store.backend !== 'memory') {
    throw new KeyConfigError([], `with gateway.store backend ${store.backend}, generated signing keys are kept in the store, encrypted: set gateway.store.secret (≥ 32 characters, e.g. \${{ env "CERTBOUND_STORE_SECRET" }}), or give signing_keys (PEM files every node has)`)
  }
  const seal = (v: string): string => box === undefined ? v : box.seal(v, key)
  const open = (v: string): string | undefined => box === undefined ? v : box.open(v, key)
  return { key, seal, open }
}

export async function sharedKeys (store: StateStore, issuer: string, alg: SigningAlg, now: () => number): Promise<KeySet> {
  const { key, seal, open } = sealing(store, issuer)
  const fresh: StoreFile = { keys: [storedKey(alg, Math.floor(now() / 1000))] }
  let text: string | undefined
  const created = await withRetry(() => store.setIfAbsent(key, seal(JSON.stringify(fresh)), FOREVER_MS))
  if (created) text = JSON.stringify(fresh)
  else {
    const v = await withRetry(() => store.get(key))
    if (v === undefined) throw new Error('the shared signing keys vanished while being read; retry')
    text = open(v)
    if (text === undefined) throw new KeyConfigError([], 'the signing keys in the store do not open with gateway.store.secret: every node must have the same secret')
  }
  const parsed = JSON.parse(text) as StoreFile
  return await keysFromStored(parsed.keys, 'the shared store')
}

/** How long creating the server waits for an unreachable store (a node starting while Redis restarts). */
const STORE_WAIT_MS = 10_000

async function withRetry<T> (f: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + STORE_WAIT_MS
  for (;;) {
    try { return await f() } catch (e) {
      if (Date.now() >= deadline) throw unreachable(e)
      await new Promise(r => setTimeout(r, 250))
    }
  }
}

/** The keys cannot be had: the server cannot sign or verify, so it does not start (a worker is retried with backoff). */
function unreachable (e: unknown): Error {
  const detail = (e as { detail?: string }).detail ?? (e as Error).message
  return new KeyConfigError([], `cannot read the signing keys from the shared store (gateway.store is unreachable: ${detail}); start again once it is back`, 'CB_CFG_SECTION')
}

/**
 * Add a new signing key to the keys kept in the store for `issuer` (of `alg`, default the newest key's algorithm).
 * Every worker and node picks it up on its next reload (SIGHUP, POST /config, a change of the file), as with the file
 * key store: the new key signs from then on, the older ones stay published so their tokens keep verifying. Rotate
 * from one place at a time (the key set is rewritten whole). Returns the new key's kid.
 */
export async function rotateSharedKey (store: StateStore, issuer: string, opts: { alg?: SigningAlg, now?: () => number } = {}): Promise<string> {
  const { key, seal, open } = sealing(store, issuer)
  const v = await store.get(key)
  const text = v === undefined ? undefined : open(v)
  if (v !== undefined && text === undefined) throw new Error('the signing keys in the store do not open with gateway.store.secret')
  const current: StoreFile = text === undefined ? { keys: [] } : JSON.parse(text) as StoreFile
  let newest: StoreFile['keys'][number] | undefined
  for (const k of current.keys) if (newest === undefined || k.created_at > newest.created_at) newest = k
  const alg = opts.alg ?? (newest === undefined ? undefined : algForKey(createPrivateKey({ key: newest.jwk, format: 'jwk' }))) ?? 'ES256'
  // created_at has one-second resolution: strictly increasing, so "newest signs" is unambiguous
  const added = storedKey(alg, Math.max(Math.floor((opts.now ?? Date.now)() / 1000), (newest?.created_at ?? 0) + 1))
  const next: StoreFile = { keys: [...current.keys, added] }
  await store.set(key, seal(JSON.stringify(next)))
  const set = await keysFromStored(next.keys, 'the shared store')
  return set.signing.kid
}
