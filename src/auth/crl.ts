import { readFile, stat } from 'node:fs/promises'
import type { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import type { CrlIssuer, CrlParser, ParsedCrl, verifyCrl } from './crl-parse.js'
import { certificateFingerprint } from './verify-chain.js'

/**
 * Certificate revocation lists (RFC 5280 §5) loaded from files: parsed with @peculiar/x509, each one's
 * signature verified against the CA that issued it, kept as a set of revoked serial numbers per issuer.
 * Files are re-read when they change; the check runs on a timer (never per request).
 */

export type RevocationStatus = 'good' | 'revoked' | 'unknown'

export interface RevocationAnswer {
  readonly status: RevocationStatus
  readonly detail: string
  /** Epoch ms until which this answer holds (the CRL's nextUpdate), or +Infinity. */
  readonly until: number
}

export interface CrlStoreOptions {
  /** Absolute paths of PEM (one or more `X509 CRL` blocks) or DER files. */
  readonly files: readonly string[]
  /** The CAs a CRL may be issued by; a CRL whose signature none of them verifies is refused. */
  readonly issuers: readonly X509Certificate[]
  /** How often the files are checked for changes (ms); default 60000. 0 disables the timer. */
  readonly checkIntervalMs?: number
  readonly logger?: Logger
}

/** A CRL file that cannot be used; `index` is its position in `files`. */
export class CrlLoadError extends Error {
  constructor (readonly index: number, message: string) {
    super(message)
    this.name = 'CrlLoadError'
  }
}

interface LoadedCrl {
  readonly file: string
  readonly issuerFingerprint: string
  readonly issuerName: string
  readonly revoked: ReadonlySet<string>
  readonly thisUpdate: number
  readonly nextUpdate: number
}

interface FileStamp { mtimeMs: number, ctimeMs: number, size: number, ino: number }

/** Serial numbers compared as upper-case hex without leading zeros (Node prints "01", @peculiar "0a1b"). */
export function normalizeSerial (hex: string): string {
  const s = hex.replace(/[^0-9a-fA-F]/g, '').toUpperCase().replace(/^0+/, '')
  return s === '' ? '0' : s
}

/**
 * Revoked serials per issuing CA, from CRL files. Create with {@link CrlStore.load}; `status` is synchronous
 * and cheap (a map and a set lookup); reloads swap the whole index atomically and bump `generation`.
 */
export class CrlStore {
  private byIssuer: ReadonlyMap<string, LoadedCrl> = new Map()
  private stamps: FileStamp[] = []
  private timer: NodeJS.Timeout | undefined
  private checking: Promise<boolean> | undefined
  private gen = 0
  // the CRL parser (@peculiar/x509, ~10 MB of RSS) loads with the first CRL file, not with the gateway
  private parser: { parse: CrlParser, issuers: readonly CrlIssuer[], verify: typeof verifyCrl } | undefined

  private constructor (private readonly opts: CrlStoreOptions) {}

  /** Load every file now (throws CrlLoadError naming the first bad file), then watch them. */
  static async load (opts: CrlStoreOptions): Promise<CrlStore> {
    const store = new CrlStore(opts)
    const { index, stamps } = await store.readAll()
    store.byIssuer = index
    store.stamps = stamps
    store.gen = 1
    const every = opts.checkIntervalMs ?? 60_000
    if (every > 0 && opts.files.length > 0) {
      store.timer = setInterval(() => { void store.refresh() }, every)
      store.timer.unref()
    }
    return store
  }

  /** Incremented on every successful reload: cached verdicts made under an older generation are re-checked. */
  get generation (): number { return this.gen }

  /** Number of CRLs in use (one per issuer). */
  get size (): number { return this.byIssuer.size }

  /** The revocation status of `cert`, issued by `issuer`, at `at` (epoch ms). */
  status (cert: X509Certificate, issuer: X509Certificate, at = Date.now()): RevocationAnswer {
    const crl = this.byIssuer.get(certificateFingerprint(issuer))
    if (crl === undefined) return { status: 'unknown', detail: `no CRL from ${issuer.subject.replace(/\n/g, ', ')}`, until: Number.POSITIVE_INFINITY }
    // RFC 5280 §6.3.3 (a)(2): a CRL past its nextUpdate no longer answers.
    if (at > crl.nextUpdate) return { status: 'unknown', detail: `CRL ${crl.file} is out of date (nextUpdate ${new Date(crl.nextUpdate).toISOString()})`, until: Number.POSITIVE_INFINITY }
    if (crl.revoked.has(normalizeSerial(cert.serialNumber))) {
      return { status: 'revoked', detail: `serial ${cert.serialNumber} is revoked by ${crl.file}`, until: crl.nextUpdate }
    }
    return { status: 'good', detail: `not in ${crl.file}`, until: crl.nextUpdate }
  }

  /**
   * Check the files now; reload them if any changed. Resolves true when a new set was loaded. A set that fails to
   * load (a half-written file) is logged and the previous one keeps serving until the next check.
   */
  refresh (): Promise<boolean> {
    this.checking ??= this.check().finally(() => { this.checking = undefined })
    return this.checking
  }

  close (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  private async check (): Promise<boolean> {
    let stamps: FileStamp[]
    try {
      stamps = await Promise.all(this.opts.files.map(f => stampOf(f)))
    } catch (err) {
      this.opts.logger?.warn({ err: (err as Error).message }, 'cannot stat a CRL file; keeping the loaded CRLs')
      return false
    }
    if (stamps.every((s, i) => sameStamp(s, this.stamps[i]))) return false
    try {
      const loaded = await this.readAll()
      this.byIssuer = loaded.index
      this.stamps = loaded.stamps
      this.gen++
      this.opts.logger?.info({ crls: loaded.index.size, generation: this.gen }, 'CRL files reloaded')
      return true
    } catch (err) {
      this.opts.logger?.error({ err: (err as Error).message }, 'CRL reload failed; keeping the previous CRLs')
      return false
    }
  }

  private async loadParser (): Promise<{ parse: CrlParser, issuers: readonly CrlIssuer[], verify: typeof verifyCrl }> {
    if (this.parser !== undefined) return this.parser
    const m = await import('./crl-parse.js')
    this.parser = { parse: m.parseCrlFile, issuers: m.crlIssuers(this.opts.issuers), verify: m.verifyCrl }
    return this.parser
  }

  private async readAll (): Promise<{ index: Map<string, LoadedCrl>, stamps: FileStamp[] }> {
    const index = new Map<string, LoadedCrl>()
    const stamps: FileStamp[] = []
    for (let i = 0; i < this.opts.files.length; i++) {
      const file = this.opts.files[i]
      let data: Buffer
      try {
        stamps.push(await stampOf(file))
        data = await readFile(file)
      } catch (err) {
        throw new CrlLoadError(i, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
      const parser = await this.loadParser()
      let crls: ParsedCrl[]
      try {
        crls = await parser.parse(data)
      } catch (err) {
        throw new CrlLoadError(i, `${file} is not a CRL (PEM or DER): ${(err as Error).message}`)
      }
      for (const crl of crls) {
        const issuer = await parser.verify(crl, parser.issuers)
        if (issuer === undefined) throw new CrlLoadError(i, `${file}: the CRL of "${crl.issuer}" is not signed by any configured CA certificate`)
        const entry: LoadedCrl = {
          file,
          issuerFingerprint: certificateFingerprint(issuer),
          issuerName: crl.issuer,
          revoked: new Set(crl.entries.map(e => normalizeSerial(e.serialNumber))),
          thisUpdate: crl.thisUpdate.getTime(),
          nextUpdate: crl.nextUpdate?.getTime() ?? Number.POSITIVE_INFINITY,
        }
        // Two CRLs from one issuer: the newer one wins (RFC 5280 §5.1.2.4 thisUpdate).
        const prev = index.get(entry.issuerFingerprint)
        if (prev === undefined || prev.thisUpdate < entry.thisUpdate) index.set(entry.issuerFingerprint, entry)
      }
    }
    return { index, stamps }
  }
}

async function stampOf (file: string): Promise<FileStamp> {
  const s = await stat(file)
  return { mtimeMs: s.mtimeMs, ctimeMs: s.ctimeMs, size: s.size, ino: s.ino }
}

function sameStamp (a: FileStamp, b: FileStamp | undefined): boolean {
  return b !== undefined && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.size === b.size && a.ino === b.ino
}
