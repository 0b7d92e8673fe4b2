import { readJsonFile, writeFileAtomic } from './atomic-file.js'

interface RevocationFile { revoked: Record<string, number> }

/**
 * Revoked access tokens (RFC 7009), by `jti`, each kept until the token's own `exp`: after that the token is
 * dead anyway, so the set stays as small as the tokens alive. Persisted to a JSON file (atomic replace, 0600)
 * before `revoke` resolves, and loaded on start, so a revocation survives a restart.
 */
export class RevocationStore {
  private readonly revoked: Map<string, number>
  private writing: Promise<void> = Promise.resolve()

  private constructor (readonly file: string | undefined, entries: Iterable<[string, number]>) {
    this.revoked = new Map(entries)
  }

  /** Open the store at `file` (undefined: in memory only). Entries already expired are dropped. */
  static async open (file: string | undefined, now = nowSeconds()): Promise<RevocationStore> {
    const entries: Array<[string, number]> = []
    if (file !== undefined) {
      const raw = await readJsonFile(file) as RevocationFile | undefined
      if (raw !== undefined) {
        if (raw === null || typeof raw !== 'object' || raw.revoked === null || typeof raw.revoked !== 'object') {
          throw new Error(`${file}: expected {"revoked": {"<jti>": <exp>}}`)
        }
        for (const [jti, exp] of Object.entries(raw.revoked)) if (typeof exp === 'number' && exp > now) entries.push([jti, exp])
      }
    }
    return new RevocationStore(file, entries)
  }

  get size (): number { return this.revoked.size }

  isRevoked (jti: string): boolean {
    return this.revoked.has(jti)
  }

  /** Revoke a token until `exp`; resolves once the revocation is on disk. */
  revoke (jti: string, exp: number): Promise<void> {
    if (this.revoked.has(jti)) return this.writing
    this.revoked.set(jti, exp)
    return this.persist()
  }

  private persist (): Promise<void> {
    const file = this.file
    if (file === undefined) return Promise.resolve()
    // serialise writes: each one writes the whole (pruned) set as it is when its turn comes
    const next = this.writing.catch(() => undefined).then(() => {
      this.prune()
      const body: RevocationFile = { revoked: Object.fromEntries(this.revoked) }
      return writeFileAtomic(file, JSON.stringify(body) + '\n')
    })
    this.writing = next
    return next
  }

  /** Drop entries whose token has expired. */
  prune (now = nowSeconds()): void {
    for (const [jti, exp] of this.revoked) if (exp <= now) this.revoked.delete(jti)
  }

  /** Wait for pending writes; a last write that failed rejects, so the gateway logs and counts it. */
  async close (): Promise<void> {
    await this.writing
  }
}

function nowSeconds (): number { return Math.floor(Date.now() / 1000) }
