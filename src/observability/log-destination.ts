import { write as fsWrite, writeSync } from 'node:fs'

/**
 * stdout for the logger, with two paths (issue 12: one unbounded asynchronous queue put a refused reload's error
 * minutes and megabytes behind the access lines, and SIGTERM then spent minutes flushing):
 *
 * - **Priority lines** (warn and above, and lines marked `"lifecycle":true`: start, stop, reloads) are written at
 *   once, synchronously, when nothing is on the wire; otherwise right after the write in flight, ahead of every
 *   queued line. They are never dropped.
 * - **Other lines** (the access log, info, debug) are gathered into 64 KiB blocks written asynchronously, one write
 *   in flight at a time. At most `maxQueuedBytes` (gateway.access_log_buffer) wait; beyond it a line is dropped and
 *   counted (`dropped`, certbound_log_lines_dropped_total), and a warning says how many, at most every 10 s.
 *
 * The fd is written whole-buffer at a time and a partial write is finished before anything else, so a priority
 * line never lands inside another line. On exit, what is queued gets at most `exitFlushMs`; the rest is dropped and
 * counted in a last line. (On a blocking pipe whose reader has stopped altogether one write can still wait for it:
 * the bound is on how much is written, and so on how long a reader that reads at all keeps the process.)
 */
export class PriorityLogDestination {
  /** Lines dropped because the queue was full (or the fd broken), since start. */
  dropped = 0
  private reported = 0
  private lastReport = 0
  private block: Buffer | undefined
  private used = 0
  private readonly queue: Buffer[] = []
  private queuedBytes = 0
  private readonly urgent: Buffer[] = []
  private pending: Buffer | undefined
  private inFlight = false
  private broken = false
  private readonly timer: NodeJS.Timeout
  private readonly drained: Array<() => void> = []

  constructor (private readonly fd: number, public maxQueuedBytes = DEFAULT_QUEUE_BYTES, private readonly exitFlushMs = EXIT_FLUSH_MS) {
    this.timer = setInterval(() => { this.handOver(); this.reportDrops(false) }, FLUSH_INTERVAL_MS)
    this.timer.unref()
    live.add(new WeakRef(this))
    if (!exitHooked) { exitHooked = true; process.once('exit', flushAllOnExit) }
  }

  /** Bytes of ordinary lines waiting (queued blocks and the block being filled). */
  get queued (): number { return this.queuedBytes + this.used }

  write (line: string): void {
    if (isPriority(line)) { this.writeUrgent(Buffer.from(line)); return }
    this.writeOrdinary(line)
  }

  /** A line the caller knows is neither a warning nor a lifecycle line (an access line): queued without a look. */
  writeOrdinary (line: string): void {
    // a UTF-16 code unit is at most 3 bytes of UTF-8
    const most = line.length * 3
    if (this.queuedBytes + this.used + line.length > this.maxQueuedBytes) { this.dropped += 1; return }
    if (this.block === undefined || this.used + most > this.block.length) {
      this.handOver()
      if (most > BLOCK_BYTES) { this.enqueue(Buffer.from(line)); return }
      this.block = Buffer.allocUnsafe(BLOCK_BYTES)
    }
    this.used += this.block.write(line, this.used)
    if (this.used > BLOCK_BYTES - 256) this.handOver()
  }

  /** pino's flush: hand the current block over and start writing; `cb` once everything queued is written. */
  flush (cb?: (err?: Error) => void): void {
    this.handOver()
    if (cb === undefined) return
    if (this.idle()) { cb(); return }
    this.drained.push(() => cb())
  }

  /** Wait until everything queued is written, or `ms` passed (a bounded exit). */
  drain (ms: number): Promise<void> {
    this.handOver()
    if (this.idle()) return Promise.resolve()
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms)
      t.unref()
      this.drained.push(() => { clearTimeout(t); resolve() })
    })
  }

  end (): void {
    clearInterval(this.timer)
    this.handOver()
  }

  /** On exit: everything queued, synchronously, for at most exitFlushMs; what is left is dropped and counted. */
  flushSync (): void {
    clearInterval(this.timer)
    const take = this.take()
    if (take !== undefined) this.queue.push(take)
    const deadline = performance.now() + this.exitFlushMs
    const parts: Buffer[] = []
    if (this.pending !== undefined) parts.push(this.pending)
    parts.push(...this.urgent.splice(0))
    this.pending = undefined
    // priority lines are never dropped
    for (const p of parts) if (!writeAllSync(this.fd, p, deadline + PRIORITY_GRACE_MS)) return
    let left = 0
    for (const b of this.queue.splice(0)) {
      if (left > 0 || performance.now() > deadline || !writeAllSync(this.fd, b, deadline)) left += countLines(b)
    }
    this.queuedBytes = 0
    this.dropped += left
    if (this.dropped > this.reported) writeAllSync(this.fd, Buffer.from(dropLine(this.dropped - this.reported, this.dropped, left > 0 ? ' at exit' : '')), performance.now() + PRIORITY_GRACE_MS)
    this.reported = this.dropped
  }

  private idle (): boolean {
    return !this.inFlight && this.pending === undefined && this.urgent.length === 0 && this.queue.length === 0 && this.used === 0
  }

  private writeUrgent (b: Buffer): void {
    if (this.inFlight || this.pending !== undefined || this.broken) { this.urgent.push(b); this.pump(); return }
    // nothing on the wire: the line goes now, at a line boundary, ahead of the queued ordinary lines
    let off = 0
    try {
      off = writeSync(this.fd, b)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') { this.broken = true; return }
    }
    if (off < b.length) { this.pending = b.subarray(off); this.pump() }
  }

  private take (): Buffer | undefined {
    if (this.block === undefined || this.used === 0) return undefined
    // a handed-over block is never written into again (the write may still be reading it)
    const b = this.block.subarray(0, this.used)
    this.block = undefined
    this.used = 0
    return b
  }

  private handOver (): void {
    const b = this.take()
    if (b !== undefined) this.enqueue(b)
    else this.pump()
  }

  private enqueue (b: Buffer): void {
    this.queue.push(b)
    this.queuedBytes += b.length
    this.pump()
  }

  private pump (): void {
    if (this.inFlight || this.broken) return
    let next = this.pending
    if (next !== undefined) this.pending = undefined
    else next = this.urgent.shift()
    if (next === undefined) {
      next = this.queue.shift()
      if (next !== undefined) this.queuedBytes -= next.length
    }
    if (next === undefined) {
      for (const d of this.drained.splice(0)) d()
      return
    }
    const buf = next
    this.inFlight = true
    fsWrite(this.fd, buf, 0, buf.length, null, (err, n) => {
      this.inFlight = false
      if (err !== null) {
        if (err.code === 'EAGAIN') { this.pending = buf; setTimeout(() => this.pump(), 10).unref(); return }
        // EPIPE and the like: the reader is gone; nothing more can be written
        this.broken = true
        this.dropped += countLines(buf)
        for (const d of this.drained.splice(0)) d()
        return
      }
      if (n < buf.length) this.pending = buf.subarray(n)
      this.pump()
    })
  }

  private reportDrops (force: boolean): void {
    if (this.dropped === this.reported) return
    const now = performance.now()
    if (!force && now - this.lastReport < DROP_REPORT_MS) return
    this.lastReport = now
    const n = this.dropped - this.reported
    this.reported = this.dropped
    this.writeUrgent(Buffer.from(dropLine(n, this.dropped, '')))
  }
}

/** Bytes of ordinary lines that may wait for a slow reader (gateway.access_log_buffer's default). */
export const DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024
/** How long the exit flush may write ordinary lines. */
export const EXIT_FLUSH_MS = 2000
/** Extra time priority lines get at exit, past the ordinary lines' budget. */
const PRIORITY_GRACE_MS = 1000
/** How long a log line may wait in the block when traffic is light. */
const FLUSH_INTERVAL_MS = 200
const BLOCK_BYTES = 64 * 1024
const DROP_REPORT_MS = 10_000

// pino writes the level label first (formatters.level); lifecycle lines carry "lifecycle":true (a JSON string value
// cannot contain an unescaped quote, so the marker cannot be forged through a logged path or header)
const PRIORITY_PREFIXES = ['{"level":"warn"', '{"level":"error"', '{"level":"fatal"']
function isPriority (line: string): boolean {
  const c = line.charCodeAt(10) // the level label's first letter: w, e, f
  if (c !== 119 && c !== 101 && c !== 102) return line.includes('"lifecycle":true')
  for (const p of PRIORITY_PREFIXES) if (line.startsWith(p)) return true
  return line.includes('"lifecycle":true')
}

function dropLine (n: number, total: number, when: string): string {
  return `{"level":"warn","pid":${process.pid},"time":"${new Date().toISOString()}","msg":"log lines dropped${when}: stdout is read more slowly than the gateway writes (gateway.access_log_buffer)","dropped":${n},"dropped_total":${total}}\n`
}

function countLines (b: Buffer): number {
  let n = 0
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++
  return n
}

/** Write all of `buf` synchronously (a non-blocking pipe answers EAGAIN while its reader is behind), until `deadline`. */
function writeAllSync (fd: number, buf: Buffer, deadline: number): boolean {
  let off = 0
  while (off < buf.length) {
    try {
      off += writeSync(fd, buf, off)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return false
      if (performance.now() > deadline) return false
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
    }
  }
  return true
}

const live = new Set<WeakRef<PriorityLogDestination>>()
let exitHooked = false
function flushAllOnExit (): void {
  for (const ref of live) { try { ref.deref()?.flushSync() } catch { /* the fd is closed */ } }
}
