import type { StateStore } from '../../src/plugin-api.js'

type Entry = { readonly key: string, readonly by: number, readonly ttlMs: number }
interface Waiting { readonly entries: readonly Entry[], resolve(v: number[]): void, reject(e: unknown): void }

/** Most counters in one store call (one Lua run in Redis); a fuller batch is sent at once. */
const MAX_ENTRIES = 512

/**
 * Increments of the requests that arrive in one turn of the event loop, sent as one `store.increment` (undici's and
 * node-redis's auto-pipelining, one step further: one command instead of one per request). Under load a shared store
 * then costs one round trip — one timer, one EVALSHA, one reply — per batch instead of per request; a lone request
 * waits only for the end of the current turn (setImmediate). Each request's windows stay together in one atomic call,
 * and a counter listed twice in a batch is incremented twice, in order, so every request sees its own count.
 */
export class IncrementBatcher {
  private waiting: Waiting[] = []
  private size = 0
  private scheduled = false

  constructor (private readonly store: StateStore) {}

  increment (entries: readonly Entry[]): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.waiting.push({ entries, resolve, reject })
      this.size += entries.length
      if (this.size >= MAX_ENTRIES) this.flush()
      else if (!this.scheduled) { this.scheduled = true; setImmediate(this.flushLater) }
    })
  }

  private readonly flushLater = (): void => { this.scheduled = false; this.flush() }

  private flush (): void {
    const batch = this.waiting
    if (batch.length === 0) return
    this.waiting = []
    this.size = 0
    if (batch.length === 1) {
      this.store.increment(batch[0].entries).then(batch[0].resolve, batch[0].reject)
      return
    }
    const all: Entry[] = []
    for (const w of batch) for (const e of w.entries) all.push(e)
    this.store.increment(all).then(function splitCounts (counts) {
      let at = 0
      for (const w of batch) { w.resolve(counts.slice(at, at + w.entries.length)); at += w.entries.length }
    }, function failAll (e: unknown) {
      for (const w of batch) w.reject(e)
    })
  }
}
