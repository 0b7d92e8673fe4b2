import { pino, type Logger } from 'pino'

type Stream = { write(s: string): unknown }

/** Characters a JSON string must escape (RFC 8259 §7), plus the two JavaScript line separators. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029]/

function str (s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"'
}

/**
 * The access log: one JSON line per request, written straight to the logger's destination. Its fields are
 * fixed and carry no secret (never a token or a header value), so it skips pino's wildcard redaction
 * (~16 µs a line) and serialises the flat record itself: strings are quoted, escaped only when needed, and the
 * timestamp is formatted once per millisecond. Nested values fall back to JSON.stringify.
 */
export function createAccessLog (logger: Logger): (fields: Record<string, unknown>) => void {
  const stream = (logger as unknown as Record<symbol, Stream | undefined>)[pino.symbols.streamSym]
  if (stream === undefined || typeof stream.write !== 'function') return (fields) => logger.info(fields)
  const prefix = `{"level":"info","pid":${process.pid},"time":"`
  let lastMs = 0
  let lastIso = ''
  return function writeAccessLine (fields) {
    if (!logger.isLevelEnabled('info')) return
    const now = Date.now()
    if (now !== lastMs) { lastMs = now; lastIso = new Date(now).toISOString() }
    let line = prefix + lastIso + '"'
    for (const k in fields) {
      const v = fields[k]
      if (v === undefined) continue
      line += ',"' + k + '":'
      if (typeof v === 'string') line += str(v)
      else if (typeof v === 'number') line += Number.isFinite(v) ? String(v) : 'null'
      else if (typeof v === 'boolean') line += v ? 'true' : 'false'
      else line += JSON.stringify(v) ?? 'null'
    }
    stream.write(line + '}\n')
  }
}
