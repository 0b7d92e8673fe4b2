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

export function createLogger (opts: LoggerOptions = {}): Logger {
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: false })
  return pino({
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  }, dest)
}
