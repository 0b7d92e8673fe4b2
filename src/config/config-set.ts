import { createHash } from 'node:crypto'
import { basename, dirname } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { ConfigSource } from './source.js'
import { formatPath, type Diagnostic, type PathKey } from './diagnostic.js'
import type { ConfigErrorCode } from '../errors/codes.js'

/** One config file's text, with its absolute path (relative paths inside it resolve against its directory). */
export interface ConfigText { readonly file: string, readonly text: string }

/**
 * The entity lists decK concatenates across files (`deck gateway apply a.yml b.yml`). Kong's other entity lists
 * (upstreams, certificates…) are refused with a reason by the validator, but still merged here so that the
 * refusal points at the file that has them.
 */
export const LIST_KEYS: ReadonlySet<string> = new Set([
  'services', 'routes', 'plugins', 'consumers',
  'upstreams', 'certificates', 'ca_certificates', 'snis', 'consumer_groups', 'vaults', 'keys', 'key_sets', 'partials',
])
/** Metadata that may repeat in every file as long as it agrees (decK: "_format_version must match"). */
const AGREE_KEYS: ReadonlySet<string> = new Set(['_format_version', '_transform', '_workspace', '_info'])

/** What validation reports through: positions, file and base directory of any key path of the merged config. */
export interface ConfigReporter {
  /** The first file (its directory is the base for a POST /config text). */
  readonly file: string
  readonly files: readonly string[]
  readonly diagnostics: readonly Diagnostic[]
  report(path: readonly PathKey[], code: string, message: string, key?: string): void
  /** The directory relative paths at `path` resolve against: that of the file the entry came from. */
  dirOf(path: readonly PathKey[]): string
  /** `services[2]` as the user wrote it: its index in its own file, and the file when there are several. */
  describe(path: readonly PathKey[]): string
}

interface Origin { readonly file: number, readonly index: number }

/**
 * Several config files merged as decK merges them: entity lists concatenated in file order (names must then be
 * unique across files, and a top-level plugin may reference a route in another file), `_format_version` equal
 * wherever it is given, every other top-level section in one file only. Each merged key path maps back to the
 * file, line and column it came from, so diagnostics name `b.yml:12:7 services[0].url`, not a merged index.
 */
export class ConfigSet implements ConfigReporter {
  readonly sources: ConfigSource[]
  readonly files: string[]
  /** The merged document as plain data; undefined when a file could not be parsed (already reported). */
  readonly merged: Record<string, unknown> | undefined
  readonly hash: string
  private readonly origins = new Map<string, Origin[]>()
  private readonly owner = new Map<string, number>()
  private readonly extra: Diagnostic[] = []

  constructor (texts: readonly ConfigText[], env: NodeJS.ProcessEnv = process.env) {
    if (texts.length === 0) throw new TypeError('ConfigSet needs at least one file')
    this.sources = texts.map(t => new ConfigSource(t.file, t.text, env))
    this.files = texts.map(t => t.file)
    const h = createHash('sha256')
    // one file hashes as before (its text); several hash their names too, so moving an entity between files shows
    if (texts.length === 1) h.update(texts[0].text)
    else for (const t of texts) h.update(`${basename(t.file)}\0${t.text}\0`)
    this.hash = h.digest('hex').slice(0, 16)
    this.merged = this.merge()
  }

  get file (): string { return this.files[0] }

  get diagnostics (): Diagnostic[] {
    return [...this.sources.flatMap(s => s.diagnostics), ...this.extra]
  }

  private merge (): Record<string, unknown> | undefined {
    if (this.sources.some(s => s.doc.errors.length > 0)) return undefined
    const out: Record<string, unknown> = {}
    let failed = false
    this.sources.forEach((src, i) => {
      const js = src.toJS()
      if (js === undefined) { failed = true; return }
      // an empty file (or one that is only comments) contributes nothing, as in decK
      if (js === null) return
      if (typeof js !== 'object' || Array.isArray(js)) {
        src.report([], 'CB_CFG_TYPE', 'the config must be a YAML mapping with _format_version, gateway, services, routes, consumers, plugins')
        failed = true
        return
      }
      for (const [k, v] of Object.entries(js as Record<string, unknown>)) {
        if (LIST_KEYS.has(k) && (Array.isArray(v) || v === null)) {
          const list = v ?? []
          const prev = out[k]
          if (prev !== undefined && !Array.isArray(prev)) continue // the first file's non-list is reported by the schema
          const merged = (prev ?? []) as unknown[]
          const origins = this.origins.get(k) ?? []
          ;(list as unknown[]).forEach((item, index) => { merged.push(item); origins.push({ file: i, index }) })
          out[k] = merged
          this.origins.set(k, origins)
          if (!this.owner.has(k)) this.owner.set(k, i)
          continue
        }
        const first = this.owner.get(k)
        if (first === undefined) { out[k] = v; this.owner.set(k, i); continue }
        if (AGREE_KEYS.has(k)) {
          if (!isDeepStrictEqual(out[k], v)) {
            src.report([k], 'CB_CFG_CONFLICT', `${k} is ${JSON.stringify(v)} here but ${JSON.stringify(out[k])} in ${basename(this.files[first])}: every file must agree`)
          }
          continue
        }
        src.report([], 'CB_CFG_DUPLICATE', `${k} is already defined in ${basename(this.files[first])}: a section may appear in one file only (decK merges entity lists, not sections)`, k)
      }
    })
    return failed ? undefined : out
  }

  /** The file and its own key path for a path of the merged config. */
  locate (full: readonly PathKey[]): { file: number, path: PathKey[] } {
    if (full.length === 0) return { file: 0, path: [] }
    const k = String(full[0])
    const origins = this.origins.get(k)
    if (origins !== undefined && typeof full[1] === 'number') {
      const o = origins[full[1]]
      if (o !== undefined) return { file: o.file, path: [k, o.index, ...full.slice(2)] }
    }
    return { file: this.owner.get(k) ?? 0, path: [...full] }
  }

  report (path: readonly PathKey[], code: ConfigErrorCode, message: string, key?: string): void {
    const full = key === undefined ? path : [...path, key]
    const loc = this.locate(full)
    const src = this.sources[loc.file]
    if (key === undefined) src.report(loc.path, code, message)
    else src.report(loc.path.slice(0, -1), code, message, key)
  }

  dirOf (path: readonly PathKey[]): string {
    return dirname(this.files[this.locate(path).file])
  }

  describe (path: readonly PathKey[]): string {
    const loc = this.locate(path)
    return this.files.length === 1 ? formatPath(loc.path) : `${formatPath(loc.path)} in ${basename(this.files[loc.file])}`
  }

  /** A problem with no key path (a file that cannot be read). */
  add (d: Diagnostic): void { this.extra.push(d) }
}

/** Files in the order given, then line and column: the order a user fixes them in. */
export function sortDiagnostics (ds: readonly Diagnostic[], files: readonly string[]): Diagnostic[] {
  const rank = (f: string): number => { const i = files.indexOf(f); return i < 0 ? files.length : i }
  return [...ds].sort((a, b) => rank(a.file) - rank(b.file) || a.line - b.line || a.col - b.col)
}
