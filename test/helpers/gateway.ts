import { mkdtempSync, writeFileSync, rmSync, appendFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createLogger } from '../../src/observability/logger.js'
import { Gateway } from '../../src/gateway.js'

export interface LogLine { level: string, msg?: string, [k: string]: unknown }

export interface TestGateway {
  gateway: Gateway
  dir: string
  file: string
  /** Base URL of listener i (https://127.0.0.1:PORT or http://...). */
  url(i?: number): string
  port(i?: number): number
  adminUrl: string | undefined
  logs: LogLine[]
  /** Write a new config text to the file (for reload tests). */
  write(yaml: string): void
  close(): Promise<void>
}

/** Every log line of every gateway the suite starts, for the "no secrets in logs" check. */
export const SUITE_LOG_DIR = join(tmpdir(), 'certbound-suite-logs')

/**
 * Boot certbound from inline YAML in a temp dir (or `dir`), on the ports the YAML gives (use port 0).
 * `files` are written next to gateway.yml first. Logs are captured as parsed JSON lines. `watch`: reload on file
 * changes, as `certbound start` does.
 */
export async function startGateway (yaml: string, opts: { dir?: string, env?: NodeJS.ProcessEnv, files?: Record<string, string>, logLevel?: string, watch?: boolean, now?: () => number } = {}): Promise<TestGateway> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'certbound-gw-'))
  const ownDir = opts.dir === undefined
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content)
  const file = join(dir, 'gateway.yml')
  writeFileSync(file, yaml)
  const logs: LogLine[] = []
  mkdirSync(SUITE_LOG_DIR, { recursive: true })
  const suiteLog = join(SUITE_LOG_DIR, `${process.pid}.log`)
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      const text = chunk.toString('utf8')
      appendFileSync(suiteLog, text)
      for (const line of text.split('\n')) if (line.trim() !== '') { try { logs.push(JSON.parse(line) as LogLine) } catch { /* partial */ } }
      cb()
    },
  })
  const logger = createLogger({ level: opts.logLevel ?? 'debug', destination: sink as never })
  const gateway = await Gateway.start({ configFile: file, logger, env: opts.env ?? process.env, watchConfig: opts.watch, now: opts.now })
  const addrs = gateway.addresses()
  return {
    gateway,
    dir,
    file,
    url: (i = 0) => addrs[i].url.replace('://[::1]', '://[::1]'),
    port: (i = 0) => addrs[i].port,
    adminUrl: gateway.adminUrl,
    logs,
    write: (text: string) => writeFileSync(file, text),
    async close () {
      await gateway.close(500)
      if (ownDir) rmSync(dir, { recursive: true, force: true })
    },
  }
}
