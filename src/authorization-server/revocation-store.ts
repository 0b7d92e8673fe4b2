import { hash } from 'node:crypto'
import { GatewayError } from '../errors/gateway-error.js'
import type { Clock, StateStore } from '../store/types.js'
import { readJsonFile } from './atomic-file.js'

/**
 * Revoked access tokens (RFC 7009), kept in the gateway's shared store (gateway.store), so a revocation holds on
 * every worker and node: by a hash of the token's `jti` (never the jti itself: keys and values of a shared store
 * carry no token material), each until the token's own `exp` — after that the token is dead anyway, so the set
 * stays as small as the tokens alive. `revoke` resolves once the store has it (and, for the memory backend, every
 * worker's replica and the revocation file); checks are answered from the store's local replica.
 */
export class RevocationStore {
  private constructor (private readonly store: StateStore, private readonly now: Clock, readonly file: string | undefined) {}

  /**
   * Use `store`, persisting to `file` where the backend needs a file for that (memory); a file in the older
   * format (`{"revoked": {"<jti>": <exp>}}`) is migrated into the store first.
   */
  static async open (store: StateStore, now: Clock, file: string | undefined): Promise<RevocationStore> {
    if (file !== undefined) {
      const raw = await readJsonFile(file) as { revoked?: unknown, revocations?: unknown } | undefined
      if (raw !== undefined) {
        if (raw === null || typeof raw !== 'object' || (raw.revocations === undefined && (raw.revoked === null || typeof raw.revoked !== 'object'))) {
          throw new Error(`${file}: expected {"revocations": {"<id>": <until ms>}}`)
        }
        if (raw.revocations === undefined) {
          const t = now()
          for (const [jti, exp] of Object.entries(raw.revoked as Record<string, unknown>)) {
            if (typeof exp === 'number' && exp * 1000 > t) await store.revoke(revocationId(jti), exp * 1000)
          }
        }
      }
      await store.persistRevocations?.(file)
    }
    return new RevocationStore(store, now, file)
  }

  /** True: revoked; false: not revoked; undefined: the store cannot tell now (the caller fails closed). */
  isRevoked (jti: string): boolean | undefined {
    return this.store.isRevoked(revocationId(jti))
  }

  /** Revoke a token until `exp` (seconds); rejects with CB_ERR_STORE_UNAVAILABLE when the store is unreachable. */
  async revoke (jti: string, exp: number): Promise<void> {
    await this.store.revoke(revocationId(jti), Math.max(exp * 1000, this.now() + 1000))
  }

  async close (): Promise<void> { /* the store outlives this server (it is the gateway's) */ }
}

/** The store id of a token: SHA-256 of its jti, base64url, under the authorization server's namespace. */
export function revocationId (jti: string): string {
  return 'as:at:' + hash('sha256', jti, 'base64url')
}

/** The error a check that cannot be decided raises (fail closed: 503). */
export function revocationUnknown (): GatewayError {
  return new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: 'the revocation set cannot be confirmed (store unreachable longer than gateway.store.replica_max_age)' })
}
