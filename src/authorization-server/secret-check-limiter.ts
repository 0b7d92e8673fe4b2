import { hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { StateStore } from '../store/types.js'
import { OAuthError } from './oauth-error.js'

export interface SecretCheckLimits {
  readonly concurrency: number
  readonly queue: number
  readonly perClient: number
  readonly retryAfterSeconds: number
  /** Failed checks one client_id may cost per minute (a token bucket of this size, refilled over a minute). */
  readonly failuresPerMinute: number
}

interface FailureBucket { tokens: number, at: number }

const MINUTE_MS = 60_000

/** The shared count's key: the client_id hashed (any bytes a client sends stay out of the key space). */
function sharedKey (clientId: string, minute: number): string {
  return `as:secret-failures:${hash('sha256', clientId, 'base64url').slice(0, 22)}:${minute}`
}

/**
 * Bounds the scrypt verifications of client secrets (each holds a libuv thread-pool thread and 32 MiB for tens of
 * ms). At most `concurrency` run at once, so wrong secrets cannot take the pool that file, DNS and crypto work of
 * every other route share; at most `queue` wait, at most `perClient` of them for one client_id, so one flooded
 * client cannot queue out the others. Beyond that the request is answered at once with 503
 * `temporarily_unavailable` and `Retry-After` instead of waiting.
 *
 * Failures are remembered per client: once a client_id has spent `failuresPerMinute` failed checks, further
 * secrets for it that are not already known good get 429 with Retry-After, without scrypt, until the budget refills
 * — a flood of wrong secrets then costs a map lookup. A secret that verified before (cached by the authenticator)
 * is not affected, so the real client keeps working during an attack on its client_id.
 *
 * One per authorization-server instance, bounded (at most 4096 clients tracked). The budget is kept twice: a bucket
 * in this process (a flood answered from memory, no round trip) and, when the gateway has a shared store, a
 * per-minute count in it that every worker and node adds its failures to — else N workers behind a load balancer
 * would grant N budgets. The shared count is a sliding-window estimate (this minute's failures plus the previous
 * minute's, weighted by how much of it is still inside the last 60 s), so it does not fall to zero at a minute's
 * turn. A store that cannot answer leaves the local bucket in charge: the secret is still checked, never skipped.
 */
export class SecretCheckLimiter {
  private running = 0
  private readonly waiting: Array<{ clientId: string, start: () => void }> = []
  private readonly perClientPending = new Map<string, number>()

  private readonly failures = new LRUCache<string, FailureBucket>({ max: 4096 })

  /**
   * `now`: epoch ms (deps.now; tests drive it). `store`: the gateway's shared store (deps.store), where the
   * failures of every worker and node are counted.
   */
  constructor (private readonly limits: SecretCheckLimits, now?: () => number, private readonly store?: StateStore) { this.now = now ?? Date.now }

  private readonly now: () => number

  /**
   * Run `check` (true = the secret matched) for `clientId` within the limits, or throw OAuthError 503 when they are
   * reached, 429 when the client's failure budget is spent.
   */
  async run (clientId: string, check: () => Promise<boolean>): Promise<boolean> {
    const bucket = this.refill(clientId)
    if (bucket !== undefined && bucket.tokens < 1) throw this.spent(Math.ceil((1 - bucket.tokens) * 60 / this.limits.failuresPerMinute), 'this process')
    const shared = this.store === undefined ? undefined : await this.sharedWait(this.store, clientId)
    if (shared !== undefined) throw this.spent(shared, 'all workers and nodes')
    const pending = this.perClientPending.get(clientId) ?? 0
    if (pending >= this.limits.perClient) throw this.busy(`${pending} client secret checks already pending for this client (per-client limit ${this.limits.perClient})`)
    if (this.running >= this.limits.concurrency && this.waiting.length >= this.limits.queue) {
      throw this.busy(`${this.running} client secret checks running and ${this.waiting.length} queued (limits ${this.limits.concurrency}/${this.limits.queue})`)
    }
    this.perClientPending.set(clientId, pending + 1)
    try {
      if (this.running >= this.limits.concurrency) await new Promise<void>(resolve => this.waiting.push({ clientId, start: resolve }))
      else this.running += 1
      try {
        const ok = await check()
        if (!ok) {
          this.spend(clientId)
          if (this.store !== undefined) await this.spendShared(this.store, clientId)
        }
        return ok
      } finally {
        const next = this.waiting.shift()
        if (next !== undefined) next.start() // the slot passes on: running stays the same
        else this.running -= 1
      }
    } finally {
      const n = (this.perClientPending.get(clientId) ?? 1) - 1
      if (n <= 0) this.perClientPending.delete(clientId)
      else this.perClientPending.set(clientId, n)
    }
  }

  /** The client's bucket, refilled to now; undefined when it has no recent failure. */
  private refill (clientId: string): FailureBucket | undefined {
    const b = this.failures.get(clientId)
    if (b === undefined) return undefined
    const t = this.now()
    b.tokens = Math.min(this.limits.failuresPerMinute, b.tokens + (t - b.at) * this.limits.failuresPerMinute / 60_000)
    b.at = t
    if (b.tokens >= this.limits.failuresPerMinute) { this.failures.delete(clientId); return undefined }
    return b
  }

  private spend (clientId: string): void {
    const b = this.refill(clientId) ?? { tokens: this.limits.failuresPerMinute, at: this.now() }
    b.tokens -= 1
    this.failures.set(clientId, b)
  }

  /** Seconds until the shared estimate is under the budget again, or undefined while it is (or the store cannot tell). */
  private async sharedWait (store: StateStore, clientId: string): Promise<number | undefined> {
    const t = this.now()
    const w = Math.floor(t / MINUTE_MS)
    let counts: Array<string | undefined>
    try {
      counts = await Promise.all([store.get(sharedKey(clientId, w)), store.get(sharedKey(clientId, w - 1))])
    } catch {
      return undefined // the local bucket still holds; the secret is still checked
    }
    const cur = Number(counts[0] ?? 0)
    const prev = Number(counts[1] ?? 0)
    const into = (t - w * MINUTE_MS) / MINUTE_MS
    const limit = this.limits.failuresPerMinute
    if (cur + prev * (1 - into) < limit) return undefined
    // this minute alone is over: wait for the next; else until the previous minute's weight has fallen enough
    const until = cur >= limit ? 1 : 1 - (limit - cur) / prev
    return Math.max(1, Math.ceil((until - into) * 60))
  }

  private async spendShared (store: StateStore, clientId: string): Promise<void> {
    // kept two windows: the next minute still weighs this one
    try { await store.increment([{ key: sharedKey(clientId, Math.floor(this.now() / MINUTE_MS)), by: 1, ttlMs: 2 * MINUTE_MS }]) } catch { /* the local bucket still counts it */ }
  }

  private spent (wait: number, where: string): OAuthError {
    return new OAuthError('temporarily_unavailable', 'too many failed client authentication attempts; retry later', {
      status: 429,
      detail: `client secret failure budget spent (${this.limits.failuresPerMinute} per minute, counted over ${where}); no secret check was made`,
      headers: { 'retry-after': String(Math.max(1, wait)) },
    })
  }

  /** Checks running and queued now (for tests and metrics). */
  get load (): { running: number, queued: number } { return { running: this.running, queued: this.waiting.length } }

  private busy (detail: string): OAuthError {
    return new OAuthError('temporarily_unavailable', 'too many client authentication attempts in progress; retry later', {
      status: 503, detail, headers: { 'retry-after': String(this.limits.retryAfterSeconds) },
    })
  }
}
