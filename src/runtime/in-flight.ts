/**
 * The requests and tunnels in flight on one runtime. Close waits on the event of the count reaching zero (not a
 * poll), up to the drain timeout; WebSocket tunnels still open then are closed.
 */
export class InFlight {
  private n = 0
  private waiters: Array<() => void> = []
  private readonly tunnels = new Set<() => void>()

  get count (): number { return this.n }

  enter (): void { this.n++ }

  leave (): void {
    if (--this.n > 0 || this.waiters.length === 0) return
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** An open tunnel and how to close it; returns the function that forgets it (when it closed by itself). */
  track (close: () => void): () => void {
    this.tunnels.add(close)
    return () => { this.tunnels.delete(close) }
  }

  /** Resolves true when nothing is in flight, false when `ms` passed first. */
  idle (ms: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true)
    if (ms <= 0) return Promise.resolve(false)
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.waiters = this.waiters.filter(w => w !== wake); resolve(false) }, ms)
      const wake = (): void => { clearTimeout(timer); resolve(true) }
      this.waiters.push(wake)
    })
  }

  /** Close every tunnel still open (after the drain timeout). */
  closeTunnels (): number {
    const all = [...this.tunnels]
    this.tunnels.clear()
    for (const c of all) c()
    return all.length
  }
}
