import { hash } from 'node:crypto'
import type { StateStore } from '../store/types.js'
import { KeyConfigError, keysFromStored, storedKey, type KeySet, type SigningAlg, type StoreFile } from './signing-keys.js'

/**
 * Signing keys generated into the shared store (no signing_keys, no key_store file): created once by whichever
 * worker or node gets there first (set-if-absent), then used by all, so a token issued by one validates at every
 * other. With the memory backend they live as long as the primary (a restart invalidates issued tokens: give
 * state_dir or key_store to keep them); with redis they live in Redis, sealed with gateway.store.secret (a private
 * key is never a value in the clear).
 */
/** No expiry in practice (a century), within every backend's TTL range. */
const FOREVER_MS = 100 * 365 * 86_400_000

export async function sharedKeys (store: StateStore, issuer: string, alg: SigningAlg, now: () => number): Promise<KeySet> {
  const key = 'as:signing-keys:' + hash('sha256', issuer, 'base64url')
  const box = store.secretBox
  if (box === undefined && store.backend !== 'memory') {
    throw new KeyConfigError([], `with gateway.store backend ${store.backend}, generated signing keys are kept in the store, encrypted: set gateway.store.secret (≥ 32 characters, e.g. \${{ env "CERTBOUND_STORE_SECRET" }}), or give signing_keys (PEM files every node has)`)
  }
  const seal = (v: string): string => box === undefined ? v : box.seal(v, key)
  const open = (v: string): string | undefined => box === undefined ? v : box.open(v, key)
  const fresh: StoreFile = { keys: [storedKey(alg, Math.floor(now() / 1000))] }
  let text: string | undefined
  if (await store.setIfAbsent(key, seal(JSON.stringify(fresh)), FOREVER_MS)) text = JSON.stringify(fresh)
  else {
    const v = await store.get(key)
    if (v === undefined) throw new Error('the shared signing keys vanished while being read; retry')
    text = open(v)
    if (text === undefined) throw new KeyConfigError([], 'the signing keys in the store do not open with gateway.store.secret: every node must have the same secret')
  }
  const parsed = JSON.parse(text) as StoreFile
  return await keysFromStored(parsed.keys, 'the shared store')
}
