/** One reload as the dashboard shows it. Diagnostics are the config's (file:line:col, key path): no secret values. */
export interface ReloadEvent {
  readonly at: string
  readonly result: 'applied' | 'refused'
  readonly config_hash?: string
  /** For a refusal: the formatted diagnostics, as POST /config answers them. */
  readonly errors?: string
}

const KEEP = 20
/** A refusal's diagnostics are cut at this length: enough for dozens of lines, bounded whatever the config. */
const MAX_ERRORS_CHARS = 8_192

/** The last reloads (bounded), and counts since start. */
export class ReloadHistory {
  private readonly events: ReloadEvent[] = []
  applied = 0
  refused = 0
  private lastRefusal: ReloadEvent | undefined

  constructor (private readonly now: () => number = Date.now) {}

  record (r: { ok: true, hash?: string } | { ok: false, errors: string }): void {
    const at = new Date(this.now()).toISOString()
    let e: ReloadEvent
    if (r.ok) {
      this.applied++
      e = { at, result: 'applied', config_hash: r.hash }
    } else {
      this.refused++
      const errors = r.errors.length > MAX_ERRORS_CHARS ? r.errors.slice(0, MAX_ERRORS_CHARS) + '\n…' : r.errors
      e = { at, result: 'refused', errors }
      this.lastRefusal = e
    }
    this.events.unshift(e)
    if (this.events.length > KEEP) this.events.length = KEEP
  }

  summary (): { applied: number, refused: number, last_refusal: ReloadEvent | null, recent: readonly ReloadEvent[] } {
    return { applied: this.applied, refused: this.refused, last_refusal: this.lastRefusal ?? null, recent: [...this.events] }
  }
}
