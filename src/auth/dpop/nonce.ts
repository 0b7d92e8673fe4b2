import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Clock, StateStore } from '../../store/types.js'

/** Where the HMAC key lives in the shared store: every worker and node signs and checks nonces with the same key. */
const KEY_NAME = 'dpop:nonce-key'
/** How long a process keeps the key before reading it again (a key evicted or replaced in the store is picked up). */
const KEY_REFRESH_MS = 60_000
const MAC_BYTES = 16

/**
 * Stateless DPoP nonces (RFC 9449 §8, §9): `base64url(issued-at seconds ‖ HMAC-SHA256(key, purpose ‖ issued-at))`.
 * Nothing is stored per nonce, so any node accepts any node's nonce; the key is shared through the store
 * (created once with set-if-absent: the first node to need it wins, the others read it). Freshness is the
 * nonce's age against the same clock as the proof's `iat`.
 */
export class NonceService {
  private key: Buffer | undefined
  private keyReadAt = Number.NEGATIVE_INFINITY
  private loading: Promise<Buffer> | undefined

  constructor (private readonly store: StateStore, private readonly now: Clock, private readonly purpose: string) {}

  private async loadKey (): Promise<Buffer> {
    // sealed with gateway.store.secret where the backend offers it (redis): the key never sits in the store in clear
    const box = this.store.secretBox
    let v = await this.store.get(KEY_NAME)
    if (v === undefined) {
      const fresh = randomBytes(32).toString('base64url')
      await this.store.setIfAbsent(KEY_NAME, box === undefined ? fresh : box.seal(fresh, KEY_NAME), 365 * 24 * 3600_000)
      v = await this.store.get(KEY_NAME)
      if (v === undefined) throw new Error('the store did not keep the DPoP nonce key')
    }
    const raw = box === undefined ? v : box.open(v, KEY_NAME)
    if (raw === undefined) throw new Error('the DPoP nonce key in the store is not sealed with this gateway.store.secret')
    this.key = Buffer.from(raw, 'base64url')
    this.keyReadAt = this.now()
    return this.key
  }

  private async currentKey (): Promise<Buffer> {
    if (this.key !== undefined && this.now() - this.keyReadAt < KEY_REFRESH_MS) return this.key
    this.loading ??= this.loadKey().finally(() => { this.loading = undefined })
    return this.loading
  }

  private mac (key: Buffer, seconds: Buffer): Buffer {
    return createHmac('sha256', key).update(this.purpose).update(seconds).digest().subarray(0, MAC_BYTES)
  }

  /** A fresh nonce. */
  async issue (): Promise<string> {
    const key = await this.currentKey()
    const t = Buffer.alloc(8)
    t.writeBigUInt64BE(BigInt(Math.floor(this.now() / 1000)))
    return Buffer.concat([t, this.mac(key, t)]).toString('base64url')
  }

  /**
   * The nonce's age in ms if we issued it (with the current key) and it is not from the future; undefined
   * otherwise (forged, from another purpose, or from a replaced key: the client gets a fresh nonce).
   */
  async age (nonce: string): Promise<number | undefined> {
    if (nonce.length !== 32 || !/^[A-Za-z0-9_-]+$/.test(nonce)) return undefined
    const raw = Buffer.from(nonce, 'base64url')
    if (raw.length !== 8 + MAC_BYTES) return undefined
    const key = await this.currentKey()
    const t = raw.subarray(0, 8)
    if (!timingSafeEqual(this.mac(key, t), raw.subarray(8))) return undefined
    const age = this.now() - Number(t.readBigUInt64BE()) * 1000
    return age < -1000 ? undefined : Math.max(0, age)
  }
}
