import { pino, type Logger } from 'pino'

/** The logger's destination; `writeOrdinary` (the gateway's own destination) takes a line known not to be urgent. */
type Stream = { write(s: string): unknown, writeOrdinary?(s: string): void }

/** One access-log line. Fixed fields, none of them a secret: never a token or a header value. */
export interface AccessRecord {
  readonly req_id: string
  readonly route: string
  readonly method: string | undefined
  readonly path: string
  readonly status: number
  readonly bytes: number
  /** Milliseconds; written with three decimals (microseconds). */
  readonly total_ms: number
  readonly upstream_ms?: number | undefined
  readonly retries?: number | undefined
  readonly client?: string | undefined
  readonly cert_subject?: string | undefined
  readonly cert_x5t?: string | undefined
  readonly sub?: string | undefined
  readonly client_id?: string | undefined
  readonly err?: string | undefined
  /** The stable sub-reason under `err` (GatewayError.errCause: expired, signature, …). */
  readonly err_cause?: string | undefined
  readonly reason?: string | undefined
}

/** Characters a JSON string must escape (RFC 8259 §7), plus the two JavaScript line separators. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/

function str (s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"'
}

function num (n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/**
 * Milliseconds with three decimals, from whole microseconds: integers print fast, where String() of a fraction
 * (shortest round-trip digits) cost ~0.5 µs a number, a sizeable share of a line.
 */
function ms3 (ms: number): string {
  if (!Number.isFinite(ms) || ms < 0 || ms > 1e9) return num(ms)
  const us = Math.round(ms * 1000)
  const frac = us % 1000
  return String((us - frac) / 1000) + (frac >= 100 ? '.' : frac >= 10 ? '.0' : '.00') + String(frac)
}

/**
 * The access log: one JSON line per request, written straight to the logger's destination. It skips pino's
 * wildcard redaction (~16 µs a line: its fields carry no secret) and serialises its fixed fields in a fixed order
 * itself: strings quoted, escaped only when needed, undefined fields left out, the timestamp formatted once per
 * millisecond. Same line shape as pino's (level, pid, time, msg).
 */
export function createAccessLog (logger: Logger): (r: AccessRecord) => void {
  const stream = (logger as unknown as Record<symbol, Stream | undefined>)[pino.symbols.streamSym]
  if (stream === undefined || typeof stream.write !== 'function') return (r) => logger.info({ msg: 'request', ...r })
  // an access line is never a warning or a lifecycle line: it need not be looked through for one (a scan of ~400
  // characters per request)
  const write = typeof stream.writeOrdinary === 'function' ? stream.writeOrdinary.bind(stream) : stream.write.bind(stream)
  const prefix = `{"level":"info","pid":${process.pid},"time":"`
  let lastMs = 0
  let lastIso = ''
  return function writeAccessLine (r) {
    if (!logger.isLevelEnabled('info')) return
    const now = Date.now()
    if (now !== lastMs) { lastMs = now; lastIso = new Date(now).toISOString() }
    let line = prefix + lastIso + '","msg":"request","req_id":' + str(r.req_id) + ',"route":' + str(r.route)
    if (r.method !== undefined) line += ',"method":' + str(r.method)
    line += ',"path":' + str(r.path) + ',"status":' + num(r.status) + ',"bytes":' + num(r.bytes) + ',"total_ms":' + ms3(r.total_ms)
    if (r.upstream_ms !== undefined) line += ',"upstream_ms":' + ms3(r.upstream_ms)
    if (r.retries !== undefined) line += ',"retries":' + num(r.retries)
    if (r.client !== undefined) line += ',"client":' + str(r.client)
    if (r.cert_subject !== undefined) line += ',"cert_subject":' + str(r.cert_subject)
    if (r.cert_x5t !== undefined) line += ',"cert_x5t":' + str(r.cert_x5t)
    if (r.sub !== undefined) line += ',"sub":' + str(r.sub)
    if (r.client_id !== undefined) line += ',"client_id":' + str(r.client_id)
    if (r.err !== undefined) line += ',"err":' + str(r.err)
    if (r.err_cause !== undefined) line += ',"err_cause":' + str(r.err_cause)
    if (r.reason !== undefined) line += ',"reason":' + str(r.reason)
    write(line + '}\n')
  }
}
