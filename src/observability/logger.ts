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

/** Lines are handed to the file writer in blocks of about this many characters. */
const BLOCK_CHARS = 32 * 1024

type SonicBoomLike = DestinationStream & { readonly fd: number, flush(cb?: (err?: Error) => void): void, flushSync(): void, end(): void }

/**
 * Gathers lines into blocks before they reach SonicBoom: under load the access log is a line per request, and
 * SonicBoom's own buffering costs per line what grows with its buffer (it appends to one string and measures
 * its byte length on every write), ~5 % of the gateway's CPU at 8 KiB. Here a line costs a string append; a
 * block is handed over when it is BLOCK_CHARS long, on flush, or at most FLUSH_INTERVAL_MS after its first line.
 */
export class CoalescingDestination implements DestinationStream {
  private pending = ''
  private readonly timer: NodeJS.Timeout

  constructor (private readonly dest: SonicBoomLike) {
    this.timer = setInterval(() => { this.handOver() }, FLUSH_INTERVAL_MS)
    this.timer.unref()
    live.add(new WeakRef(this))
    if (!exitHooked) { exitHooked = true; process.once('exit', flushAllOnExit) }
  }

  write (line: string): void {
    this.pending += line
    if (this.pending.length >= BLOCK_CHARS) this.handOver()
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
    this.dest.flushSync()
    const block = this.pending
    this.pending = ''
    if (block !== '') writeAllSync(this.dest.fd, Buffer.from(block))
  }

  end (): void {
    clearInterval(this.timer)
    this.handOver()
    this.dest.end()
  }

  private handOver (): void {
    if (this.pending === '') return
    const block = this.pending
    this.pending = ''
    try { this.dest.write(block) } catch { /* closed: the lines are lost with the stream */ }
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
  return new CoalescingDestination(pino.destination({ dest: 1, sync: false }) as unknown as SonicBoomLike)
}
