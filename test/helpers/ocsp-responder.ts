/**
 * A real OCSP responder for tests: `openssl ocsp -index … -port …` on a free loopback port, answering from an
 * index.txt in `openssl ca` format that the test writes. Every request it serves is counted (from its `-text`
 * output), so tests can tell a cached answer from a fresh one.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { X509Certificate } from 'node:crypto'

export interface IndexEntry {
  readonly cert: X509Certificate
  /** Revoked at this time; undefined = valid. */
  readonly revokedAt?: Date
}

export interface OcspResponder {
  readonly url: string
  readonly port: number
  /** Requests answered so far (its log line may trail the response a little: see count()). */
  requests (): number
  /** Requests answered, once the responder's output has settled (no new request logged for 150 ms). */
  count (): Promise<number>
  stop (): Promise<void>
}

/** YYMMDDHHMMSSZ, as index.txt wants it. */
function utc (d: Date): string {
  return d.toISOString().replace(/^\d\d(\d\d)-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d).*$/, '$1$2$3$4$5$6Z')
}

export function writeIndex (file: string, entries: readonly IndexEntry[]): void {
  const lines = entries.map(({ cert, revokedAt }) => {
    const subject = '/' + cert.subject.split('\n').join('/')
    return [revokedAt === undefined ? 'V' : 'R', utc(new Date(cert.validTo)), revokedAt === undefined ? '' : utc(revokedAt), cert.serialNumber.toUpperCase(), 'unknown', subject].join('\t')
  })
  writeFileSync(file, lines.join('\n') + '\n')
  writeFileSync(file + '.attr', 'unique_subject = no\n')
}

/** A port nobody listens on right now (bound, read, released). */
export async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>(resolve => srv.close(() => resolve()))
  return port
}

export interface ResponderOptions {
  readonly dir: string
  /** index.txt path (written by the test with writeIndex). */
  readonly index: string
  readonly caFile: string
  /** The signing certificate and key: the CA itself or a delegated responder. */
  readonly signerCert: string
  readonly signerKey: string
  /** nextUpdate = thisUpdate + this many days (openssl -ndays); default 1. */
  readonly days?: number
  /** Use this port (it must be free); default a free one. */
  readonly port?: number
}

/** Start `openssl ocsp` and wait (bounded) until it accepts connections. */
export async function startOcspResponder (o: ResponderOptions): Promise<OcspResponder> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = o.port ?? await freePort()
    let out = ''
    // stdbuf: openssl's stdout is block-buffered into a pipe, and the request count is read from it
    const child: ChildProcess = spawn('stdbuf', [
      '-oL', 'openssl', 'ocsp', '-index', o.index, '-port', String(port), '-CA', o.caFile, '-rsigner', o.signerCert, '-rkey', o.signerKey,
      '-ndays', String(o.days ?? 1), '-text', '-ignore_err',
    ], { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stdout!.on('data', (d: Buffer) => { out += d.toString('latin1') })
    child.stderr!.on('data', (d: Buffer) => { err += d.toString('latin1') })
    let exited = false
    child.once('exit', () => { exited = true })
    const deadline = Date.now() + 10_000
    // not probed with a connection: openssl 3.0's responder hangs on a connection that sends nothing
    const ready = (): boolean => /ACCEPT|waiting for OCSP client/.test(err + out)
    while (!exited && Date.now() < deadline && !ready()) await new Promise(resolve => setTimeout(resolve, 20))
    if (exited || Date.now() >= deadline) {
      child.kill('SIGKILL')
      if (o.port !== undefined) throw new Error(`openssl ocsp did not start on port ${port}`)
      continue
    }
    return {
      url: `http://127.0.0.1:${port}/`,
      port,
      requests: () => out.match(/OCSP Request Data:/g)?.length ?? 0,
      count: async function count () {
        let n = -1
        for (let i = 0; i < 20; i++) {
          await new Promise(resolve => setTimeout(resolve, 150))
          const m = out.match(/OCSP Request Data:/g)?.length ?? 0
          if (m === n) return m
          n = m
        }
        return n
      },
      stop: () => new Promise<void>((resolve) => {
        if (exited) { resolve(); return }
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
    }
  }
  throw new Error('openssl ocsp did not start (no free port after 5 attempts)')
}

export const INDEX_FILE = (dir: string): string => join(dir, 'index.txt')
