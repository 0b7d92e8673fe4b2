import { writeSync } from 'node:fs'
import { pino, type Logger, type DestinationStream } from 'pino'

/**
 * Paths pino removes from every log line, whatever a caller passes: tokens, secrets and keys never reach
 * a log (STYLE.md rule 9). Plugins log claims and reasons, never the credential itself.
 */
export const REDACT_PATHS = [
  'token', 'access_token', 'refresh_token', 'id_token', 'client_secret', 'secret', 'password', 'key', 'private_key',
  '*.token', '*.access_token', '*.client_secret', '*.secret', '*.password', '*.private_key',
  'headers.authorization', 'headers.cookie', 'headers["proxy-authorization"]',
  'req.headers.authorization', 'req.headers.cookie',
  'credential.token',
]

export interface LoggerOptions {
  level?: string
  /** Where lines go; default: an asynchronous stdout destination (no pretty printing). */
  destination?: DestinationStream
}

/** How long a log line may wait in the buffer when traffic is light. */
const FLUSH_INTERVAL_MS = 200

export function createLogger (opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? bufferedStdout()
  return pino({
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, dest)
}

/** Lines are encoded into blocks of this many bytes before they go to the file writer. */
const BLOCK_BYTES = 64 * 1024

type SonicBoomLike = { readonly fd: number, write(b: Buffer): unknown, flush(cb?: (err?: Error) => void): void, flushSync(): void, end(): void }

/**
 * Encodes lines into 64 KiB blocks that SonicBoom (in buffer mode) writes asynchronously. Under load the access log
 * is a line per request, and SonicBoom's own buffering costs per line what grows with its buffer (it appends to one
 * string and measures its byte length on every write): ~5 % of the gateway's CPU. Here a line costs one UTF-8
 * copy into the block; a block is handed over when full, on flush, or at most FLUSH_INTERVAL_MS after its first line.
 */
export class CoalescingDestination implements DestinationStream {
  private block: Buffer | undefined
  private used = 0
  private readonly timer: NodeJS.Timeout

  constructor (private readonly dest: SonicBoomLike) {
    this.timer = setInterval(() => { this.handOver() }, FLUSH_INTERVAL_MS)
    this.timer.unref()
    live.add(new WeakRef(this))
    if (!exitHooked) { exitHooked = true; process.once('exit', flushAllOnExit) }
  }

  write (line: string): void {
    // a UTF-16 code unit is at most 3 bytes of UTF-8
    const most = line.length * 3
    if (this.block === undefined || this.used + most > this.block.length) {
      this.handOver()
      if (most > BLOCK_BYTES) { this.send(Buffer.from(line)); return }
      this.block = Buffer.allocUnsafe(BLOCK_BYTES)
    }
    this.used += this.block.write(line, this.used)
  }

  flush (cb?: (err?: Error) => void): void {
    this.handOver()
    try { this.dest.flush(cb) } catch (e) { cb?.(e as Error) }
  }

  /**
   * On exit: SonicBoom's queue, then this block, written synchronously. Handing the block to SonicBoom here would
   * start an asynchronous write that the exiting process never completes.
   */
  flushSync (): void {
    try {
      this.dest.flushSync()
    } finally {
      const rest = this.take()
      if (rest !== undefined) writeAllSync(this.dest.fd, rest)
    }
  }

  end (): void {
    clearInterval(this.timer)
    this.handOver()
    this.dest.end()
  }

  private take (): Buffer | undefined {
    if (this.block === undefined || this.used === 0) return undefined
    // SonicBoom keeps the buffer it is given until written: a handed-over block is never written into again
    const b = this.block.subarray(0, this.used)
    this.block = undefined
    this.used = 0
    return b
  }

  private handOver (): void {
    const b = this.take()
    if (b !== undefined) this.send(b)
  }

  private send (b: Buffer): void {
    try { this.dest.write(b) } catch { /* closed: the lines are lost with the stream */ }
  }
}

/** A non-blocking stdout (a pipe) answers EAGAIN while its reader is behind: wait for it, a bounded while. */
function writeAllSync (fd: number, buf: Buffer): void {
  let off = 0
  for (let tries = 0; off < buf.length && tries < 1000;) {
    try {
      off += writeSync(fd, buf, off)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return
      tries++
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)
    }
  }
}

const live = new Set<WeakRef<CoalescingDestination>>()
let exitHooked = false
/** pino flushes its SonicBoom on exit; the block not yet handed to it is written here. */
function flushAllOnExit (): void {
  for (const ref of live) { try { ref.deref()?.flushSync() } catch { /* the stream is closed */ } }
}

/** stdout through SonicBoom (asynchronous writes), fed in blocks; no pretty printing. */
function bufferedStdout (): DestinationStream {
  return new CoalescingDestination(pino.destination({ dest: 1, sync: false, contentMode: 'buffer' } as Parameters<typeof pino.destination>[0]) as unknown as SonicBoomLike)
}
