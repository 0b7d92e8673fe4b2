import { pino, type Logger } from 'pino'

type Stream = { write(s: string): unknown }

/**
 * The access log: one JSON line per request, written straight to the logger's destination. Its fields are
 * fixed and carry no secret (never a token or a header value), so it skips pino's wildcard redaction, which
 * measured ~16 µs a line against ~2 µs for this writer (bench: redaction dominated the log cost).
 */
export function createAccessLog (logger: Logger): (fields: Record<string, unknown>) => void {
  const stream = (logger as unknown as Record<symbol, Stream | undefined>)[pino.symbols.streamSym]
  const prefix = `{"level":"info","pid":${process.pid},"time":"`
  if (stream === undefined || typeof stream.write !== 'function') return (fields) => logger.info(fields)
  return function writeAccessLine (fields) {
    if (!logger.isLevelEnabled('info')) return
    const json = JSON.stringify(fields)
    stream.write(prefix + new Date().toISOString() + '",' + json.slice(1) + '\n')
  }
}
