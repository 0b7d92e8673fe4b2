/** One registered client as the admin dashboard shows it: counts and methods, never a secret. */
export interface ClientActivityRow {
  readonly client_id: string
  readonly name?: string
  readonly auth_method: string
  readonly tokens_issued: number
  readonly tokens_revoked: number
  readonly last_issued_at?: string
}

interface Counts { issued: number, revoked: number, lastIssued: number }

const STASH_KEY = 'authorization_server.client_activity'

/**
 * Tokens issued and revoked per client, counted by this process since it started (gateway.workers: the primary
 * adds the workers' counts up). It lives in the gateway's stash, so a reload keeps the counts; only clients of the
 * current config are reported, and entries of clients that left the config are dropped at the next load.
 */
export class ClientActivity {
  private readonly counts = new Map<string, Counts>()

  static shared (stash: Map<string, unknown> | undefined, clientIds: Iterable<string>): ClientActivity {
    const existing = stash?.get(STASH_KEY)
    const a = existing instanceof ClientActivity ? existing : new ClientActivity()
    stash?.set(STASH_KEY, a)
    const keep = new Set(clientIds)
    for (const id of a.counts.keys()) if (!keep.has(id)) a.counts.delete(id)
    for (const id of keep) if (!a.counts.has(id)) a.counts.set(id, { issued: 0, revoked: 0, lastIssued: 0 })
    return a
  }

  issued (clientId: string, at = Date.now()): void {
    const c = this.counts.get(clientId)
    if (c !== undefined) { c.issued++; c.lastIssued = at }
  }

  revoked (clientId: string): void {
    const c = this.counts.get(clientId)
    if (c !== undefined) c.revoked++
  }

  rows (clients: Iterable<{ id: string, name: string | undefined, method: string }>): ClientActivityRow[] {
    const out: ClientActivityRow[] = []
    for (const cl of clients) {
      const c = this.counts.get(cl.id)
      out.push({
        client_id: cl.id,
        name: cl.name,
        auth_method: cl.method,
        tokens_issued: c?.issued ?? 0,
        tokens_revoked: c?.revoked ?? 0,
        last_issued_at: c !== undefined && c.lastIssued > 0 ? new Date(c.lastIssued).toISOString() : undefined,
      })
    }
    return out
  }
}
