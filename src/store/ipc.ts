import type { MemoryStore } from './memory.js'
import { GatewayError } from '../errors/gateway-error.js'
import type { Clock, StateStore, StoreStatus } from './types.js'

/**
 * The memory backend across `gateway.workers`: the primary owns the one MemoryStore (StoreHost) and workers reach
 * it over the cluster IPC channel (IpcStore). Workers keep a replica of the revocation set, pushed by the primary;
 * a revoke is answered only after every live worker acknowledged it, so a revocation is in every worker's replica
 * before /oauth2/revoke answers 200. Every message is validated on receipt (a worker is a separate process: a
 * malformed message gets an error reply or is dropped, never a crash).
 */

const MAX_KEY = 1024
const MAX_VALUE = 1024 * 1024
const MAX_ENTRIES = 256
/** How long a revoke waits for every worker's acknowledgement before it answers anyway (a worker that hangs). */
export const ACK_TIMEOUT_MS = 2000
/** A worker's request to the primary that got no answer within this fails (the decision fails closed). */
export const REQUEST_TIMEOUT_MS = 5000

export type StoreRequest =
  | { type: 'store', id: number, op: 'get', key: string }
  | { type: 'store', id: number, op: 'set', key: string, value: string, ttlMs?: number }
  | { type: 'store', id: number, op: 'delete', key: string }
  | { type: 'store', id: number, op: 'setIfAbsent', key: string, value: string, ttlMs: number }
  | { type: 'store', id: number, op: 'increment', entries: Array<{ key: string, by: number, ttlMs: number }> }
  | { type: 'store', id: number, op: 'revoke', rid: string, until: number }
  | { type: 'store', id: number, op: 'publish', channel: string, message: string }
  | { type: 'store', id: number, op: 'persist', file: string }
  | { type: 'store', id: number, op: 'snapshot' }

export type StoreReply = { type: 'store-reply', id: number, ok: true, value?: unknown } | { type: 'store-reply', id: number, ok: false, error: string }
export type StoreEvent =
  | { type: 'store-revoked', seq: number, rid: string, until: number }
  | { type: 'store-message', channel: string, message: string }
export type StoreAck = { type: 'store-ack', seq: number }

const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max
const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const ttl = (v: unknown): v is number => num(v) && v >= 0

/** A well-formed request, or a reason it is not (undefined id: nothing to answer to). */
export function parseStoreRequest (m: unknown): { req: StoreRequest } | { id: number | undefined, error: string } {
  if (m === null || typeof m !== 'object') return { id: undefined, error: 'not an object' }
  const o = m as Record<string, unknown>
  const id = Number.isSafeInteger(o.id) ? o.id as number : undefined
  if (id === undefined) return { id, error: 'no id' }
  const bad = (error: string) => ({ id, error })
  switch (o.op) {
    case 'get': case 'delete':
      return str(o.key, MAX_KEY) ? { req: { type: 'store', id, op: o.op, key: o.key } } : bad('key')
    case 'set':
      if (!str(o.key, MAX_KEY) || !str(o.value, MAX_VALUE)) return bad('key/value')
      if (o.ttlMs !== undefined && !ttl(o.ttlMs)) return bad('ttlMs')
      return { req: { type: 'store', id, op: 'set', key: o.key, value: o.value, ttlMs: o.ttlMs as number | undefined } }
    case 'setIfAbsent':
      return str(o.key, MAX_KEY) && str(o.value, MAX_VALUE) && ttl(o.ttlMs) ? { req: { type: 'store', id, op: 'setIfAbsent', key: o.key, value: o.value, ttlMs: o.ttlMs } } : bad('key/value/ttlMs')
    case 'increment': {
      if (!Array.isArray(o.entries) || o.entries.length > MAX_ENTRIES) return bad('entries')
      const entries: Array<{ key: string, by: number, ttlMs: number }> = []
      for (const e of o.entries as unknown[]) {
        const x = e as Record<string, unknown> | null
        if (x === null || typeof x !== 'object' || !str(x.key, MAX_KEY) || !num(x.by) || !ttl(x.ttlMs)) return bad('entry')
        entries.push({ key: x.key, by: x.by, ttlMs: x.ttlMs })
      }
      return { req: { type: 'store', id, op: 'increment', entries } }
    }
    case 'revoke':
      return str(o.rid, MAX_KEY) && num(o.until) ? { req: { type: 'store', id, op: 'revoke', rid: o.rid, until: o.until } } : bad('rid/until')
    case 'publish':
      return str(o.channel, MAX_KEY) && str(o.message, MAX_VALUE) ? { req: { type: 'store', id, op: 'publish', channel: o.channel, message: o.message } } : bad('channel/message')
    case 'persist':
      return str(o.file, 4096) && o.file.startsWith('/') ? { req: { type: 'store', id, op: 'persist', file: o.file } } : bad('file')
    case 'snapshot':
      return { req: { type: 'store', id, op: 'snapshot' } }
    default:
      return bad('unknown op')
  }
}

/** Is this cluster message part of the store protocol? */
export function isStoreMessage (m: unknown): boolean {
  const t = (m as { type?: unknown } | null)?.type
  return typeof t === 'string' && t.startsWith('store')
}

/** The primary's side: one per cluster, over the MemoryStore it owns. */
export interface StorePeer { readonly id: number, send(m: StoreReply | StoreEvent): void }

export class StoreHost {
  private readonly peers = new Map<number, StorePeer>()
  private seq = 0
  private readonly waiting = new Map<number, { left: Set<number>, done(): void }>()

  constructor (readonly owner: MemoryStore, private readonly ackTimeoutMs = ACK_TIMEOUT_MS) {}

  /** Handle one message from `peer`; false when it is not a store message. Never throws. */
  handle (peer: StorePeer, m: unknown): boolean {
    if (!isStoreMessage(m)) return false
    this.peers.set(peer.id, peer)
    const type = (m as { type: string }).type
    if (type === 'store-ack') {
      const seq = (m as { seq?: unknown }).seq
      if (typeof seq === 'number') this.acked(seq, peer.id)
      return true
    }
    if (type !== 'store') return true
    const p = parseStoreRequest(m)
    if (!('req' in p)) {
      if (p.id !== undefined) safeSend(peer, { type: 'store-reply', id: p.id, ok: false, error: `malformed store request: ${p.error}` })
      return true
    }
    const id = p.req.id
    this.run(p.req).then(
      (value) => safeSend(peer, { type: 'store-reply', id, ok: true, value }),
      (e: unknown) => safeSend(peer, { type: 'store-reply', id, ok: false, error: (e as Error).message }),
    )
    return true
  }

  /** A worker exited: nothing waits for its acknowledgements any more. */
  gone (peerId: number): void {
    this.peers.delete(peerId)
    for (const seq of [...this.waiting.keys()]) this.acked(seq, peerId)
  }

  private acked (seq: number, peerId: number): void {
    const w = this.waiting.get(seq)
    if (w === undefined) return
    w.left.delete(peerId)
    if (w.left.size === 0) { this.waiting.delete(seq); w.done() }
  }

  private async run (r: StoreRequest): Promise<unknown> {
    const s = this.owner
    switch (r.op) {
      case 'get': return await s.get(r.key)
      case 'set': return await s.set(r.key, r.value, r.ttlMs)
      case 'delete': return await s.delete(r.key)
      case 'setIfAbsent': return await s.setIfAbsent(r.key, r.value, r.ttlMs)
      case 'increment': return await s.increment(r.entries)
      case 'revoke': {
        await s.revoke(r.rid, r.until)
        await this.broadcastRevocation(r.rid, r.until)
        return undefined
      }
      case 'publish':
        for (const p of this.peers.values()) safeSend(p, { type: 'store-message', channel: r.channel, message: r.message })
        return undefined
      case 'persist': return await s.persistRevocations(r.file)
      case 'snapshot': return [...s.revocations()]
    }
  }

  /** Push a revocation to every worker's replica; resolves once all acknowledged (or ackTimeoutMs passed). */
  private broadcastRevocation (rid: string, until: number): Promise<void> {
    const seq = ++this.seq
    const left = new Set(this.peers.keys())
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.waiting.delete(seq); resolve() }, this.ackTimeoutMs)
      timer.unref()
      this.waiting.set(seq, { left, done: () => { clearTimeout(timer); resolve() } })
      for (const p of this.peers.values()) safeSend(p, { type: 'store-revoked', seq, rid, until })
      if (left.size === 0) this.acked(seq, -1)
    })
  }
}

function safeSend (p: StorePeer, m: StoreReply | StoreEvent): void {
  try { p.send(m) } catch { /* the worker is gone; its exit is handled by the cluster */ }
}

/** A worker's store: every operation is a request to the primary; revocations are answered from the replica. */
export class IpcStore implements StateStore {
  readonly backend = 'memory'
  private nextId = 0
  private readonly pending = new Map<number, { resolve(v: unknown): void, reject(e: Error): void, timer: NodeJS.Timeout }>()
  private readonly replica = new Map<string, number>()
  private readonly channels = new Map<string, Set<(m: string) => void>>()
  private synced = false
  private closed = false

  constructor (private readonly send: (m: StoreRequest | StoreAck) => void, private readonly now: Clock, private readonly timeoutMs = REQUEST_TIMEOUT_MS) {}

  /** Fetch the primary's revocation set (before serving: until then isRevoked answers undefined). */
  async sync (): Promise<void> {
    const entries = await this.request({ op: 'snapshot' }) as Array<[string, number]>
    for (const [rid, until] of entries) this.remember(rid, until)
    this.synced = true
  }

  /** Handle a message from the primary; false when it is not a store message. Never throws. */
  handleMessage (m: unknown): boolean {
    if (!isStoreMessage(m)) return false
    const o = m as Record<string, unknown>
    if (o.type === 'store-reply' && typeof o.id === 'number') {
      const p = this.pending.get(o.id)
      if (p === undefined) return true
      this.pending.delete(o.id)
      clearTimeout(p.timer)
      if (o.ok === true) p.resolve(o.value)
      else p.reject(unavailable(typeof o.error === 'string' ? o.error : 'refused'))
    } else if (o.type === 'store-revoked' && typeof o.rid === 'string' && num(o.until)) {
      this.remember(o.rid, o.until)
      if (typeof o.seq === 'number') { try { this.send({ type: 'store-ack', seq: o.seq }) } catch { /* primary gone */ } }
    } else if (o.type === 'store-message' && typeof o.channel === 'string' && typeof o.message === 'string') {
      for (const h of this.channels.get(o.channel) ?? []) { try { h(o.message) } catch { /* a subscriber's fault is its own */ } }
    }
    return true
  }

  private remember (rid: string, until: number): void {
    const prev = this.replica.get(rid)
    if (prev === undefined || prev < until) this.replica.set(rid, until)
  }

  private request (body: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(unavailable('the store is closed'))
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(unavailable(`no answer from the primary within ${this.timeoutMs} ms`)) }, this.timeoutMs)
      timer.unref()
      this.pending.set(id, { resolve, reject, timer })
      try { this.send({ type: 'store', id, ...body } as StoreRequest) } catch (e) {
        clearTimeout(timer)
        this.pending.delete(id)
        reject(unavailable((e as Error).message))
      }
    })
  }

  async get (key: string): Promise<string | undefined> { return await this.request({ op: 'get', key }) as string | undefined }
  async set (key: string, value: string, ttlMs?: number): Promise<void> { await this.request({ op: 'set', key, value, ttlMs }) }
  async delete (key: string): Promise<void> { await this.request({ op: 'delete', key }) }
  async setIfAbsent (key: string, value: string, ttlMs: number): Promise<boolean> { return await this.request({ op: 'setIfAbsent', key, value, ttlMs }) === true }
  async increment (entries: ReadonlyArray<{ readonly key: string, readonly by: number, readonly ttlMs: number }>): Promise<number[]> {
    if (entries.length === 0) return []
    return await this.request({ op: 'increment', entries: entries.map(e => ({ key: e.key, by: e.by, ttlMs: e.ttlMs })) }) as number[]
  }

  async revoke (id: string, untilMs: number): Promise<void> {
    await this.request({ op: 'revoke', rid: id, until: untilMs })
    this.remember(id, untilMs)
  }

  isRevoked (id: string): boolean | undefined {
    const until = this.replica.get(id)
    if (until !== undefined) {
      if (until > this.now()) return true
      this.replica.delete(id)
    }
    return this.synced ? false : undefined
  }

  async publish (channel: string, message: string): Promise<void> { await this.request({ op: 'publish', channel, message }) }

  subscribe (channel: string, handler: (message: string) => void): () => void {
    let set = this.channels.get(channel)
    if (set === undefined) this.channels.set(channel, set = new Set())
    set.add(handler)
    return () => { set.delete(handler) }
  }

  async persistRevocations (file: string): Promise<void> {
    await this.request({ op: 'persist', file })
    await this.sync()
  }

  status (): StoreStatus { return { backend: this.backend, connected: this.synced && !this.closed, ...(this.synced ? {} : { detail: 'revocation replica not yet synced from the primary' }) } }

  async close (): Promise<void> {
    this.closed = true
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(unavailable('the store is closed')) }
    this.pending.clear()
    this.channels.clear()
  }
}

function unavailable (detail: string): GatewayError {
  return new GatewayError('CB_ERR_STORE_UNAVAILABLE', { detail: `store (memory, via the primary): ${detail}` })
}
