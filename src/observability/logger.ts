import { pino, type Logger, type DestinationStream } from 'pino'
import { EXIT_FLUSH_MS, PriorityLogDestination } from './log-destination.js'

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
  /** Where lines go; default: stdout with a synchronous path for warn+ and lifecycle lines (no pretty printing). */
  destination?: DestinationStream
}

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

/** stdout with a priority path for warn+ and lifecycle lines and a bounded queue for the rest. */
function bufferedStdout (): DestinationStream {
  return new PriorityLogDestination(1)
}

/** The logger's PriorityLogDestination, when it writes to one (not in tests that capture lines). */
export function logDestination (logger: Logger): PriorityLogDestination | undefined {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
  return stream instanceof PriorityLogDestination ? stream : undefined
}

/** Before process.exit(): let queued lines out for at most `ms` (the exit hook writes what is left, bounded too). */
export function drainLogs (logger: Logger, ms = EXIT_FLUSH_MS): Promise<void> {
  return logDestination(logger)?.drain(ms) ?? Promise.resolve()
}
